"""One narrow seam over the two databases durable state can live in: SQLite or PostgreSQL.

``WRAPSERVE_DATABASE_URL`` picks it: unset (or ``sqlite:///PATH``), one SQLite file in WAL
mode, the embedded default; ``postgresql://...``, a PostgreSQL server that several replicas
share. Stores write their SQL once, with ``?`` or ``:name`` placeholders and portable
expressions; the few differences (the blob type, row locks, how writers are serialised)
are named here, not scattered through the stores.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from wrappers.errors import ConfigurationError, WrapserveError

__all__ = ["Database", "DatabaseUnavailable", "Rows", "open_database", "open_sqlite", "redact_url"]

log = logging.getLogger("wrapserve")

Dialect = Literal["sqlite", "postgresql"]
Params = Sequence[Any] | Mapping[str, Any]


@dataclass(frozen=True)
class Rows:
    """What a statement gave back: its rows (readable by column name), and the rows it changed."""

    rows: list[Any]
    rowcount: int

    def fetchone(self) -> Any:
        return self.rows[0] if self.rows else None

    def fetchall(self) -> list[Any]:
        return self.rows


def redact_url(url: str) -> str:
    """The URL without its password or query (which may hold one), for logs and messages."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc, query="").geturl()


class DatabaseUnavailable(WrapserveError):
    """The shared database could not be reached; nothing was written. Retry later."""

    status = 503
    code = "database_unavailable"
    type = "server_error"
    retryable = True


class Database:
    """One connection, shared by the thread that owns the store; statements are serialised.

    A PostgreSQL connection that broke (the server restarted, the network dropped) fails the
    statement in flight with ``DatabaseUnavailable`` (503) and is opened again by the next
    one, so the store recovers on its own once the database is back.
    """

    def __init__(self, dialect: Dialect, connection: Any, where: str, url: str | None = None) -> None:
        self.dialect = dialect
        self.where = where  # for messages: a path, or the URL without its password
        self._url = url  # PostgreSQL: to connect again after the connection broke
        self._connection = connection
        self._lock = threading.RLock()
        # Column types and clauses that differ; everything else is written once.
        self.blob = "BYTEA" if dialect == "postgresql" else "BLOB"
        # Row locks for read-then-write in one transaction: SQLite's writers are already
        # serialised by BEGIN IMMEDIATE; PostgreSQL's READ COMMITTED needs FOR UPDATE.
        self.for_update = " FOR UPDATE" if dialect == "postgresql" else ""
        # Claims by several runners at once: each takes rows the others have not locked.
        self.skip_locked = " FOR UPDATE SKIP LOCKED" if dialect == "postgresql" else ""
        # The database's clock, in epoch seconds: one clock for every replica.
        self.now = (
            "EXTRACT(EPOCH FROM clock_timestamp())"
            if dialect == "postgresql"
            else "((julianday('now') - 2440587.5) * 86400.0)"
        )

    # -- statements ----------------------------------------------------------------------

    def execute(self, sql: str, params: Params = ()) -> Rows:
        """Run one statement and read its rows at once, under the lock: threads share the
        connection, and none may read rows while another's transaction is open on it."""
        with self._lock, self._reachable():
            cursor = self._connection.execute(self._translate(sql), params)
            rows = cursor.fetchall() if cursor.description is not None else []
            return Rows(rows, cursor.rowcount)

    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        with self._lock, self._reachable():
            if self.dialect == "postgresql":
                with self._connection.cursor() as cursor:
                    cursor.executemany(self._translate(sql), rows)
            else:
                self._connection.executemany(sql, rows)

    def executescript(self, script: str) -> None:
        """DDL; each statement ends with ``;`` at the end of its line (comments may hold ``;``)."""
        with self._lock, self._reachable():
            if self.dialect == "sqlite":
                self._connection.executescript(script)
                return
            with self._connection.transaction():
                # Replicas starting together would race on CREATE TABLE IF NOT EXISTS.
                self._connection.execute("SELECT pg_advisory_xact_lock(7270617073)")
                for statement in re.split(r";\s*\n", script):
                    if statement.strip():
                        self._connection.execute(statement)

    @contextmanager
    def transaction(self, *, serialise: str | None = None) -> Iterator[Database]:
        """One atomic unit. ``serialise``: a table whose writers must take turns for the whole
        transaction (a read of MAX(...) then an insert), as SQLite's writers always do."""
        with self._lock:
            if self.dialect == "sqlite":
                self._connection.execute("BEGIN IMMEDIATE")
                try:
                    yield self
                except BaseException:
                    self._connection.execute("ROLLBACK")
                    raise
                self._connection.execute("COMMIT")
                return
            with self._reachable(), self._connection.transaction():
                if serialise is not None:
                    self._connection.execute(f"LOCK TABLE {serialise} IN SHARE ROW EXCLUSIVE MODE")
                yield self

    def columns(self, table: str) -> set[str]:
        if self.dialect == "sqlite":
            return {row["name"] for row in self.execute(f"PRAGMA table_info({table})").fetchall()}
        rows = self.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_name = ? AND table_schema = current_schema()",
            (table,),
        )
        return {row["column_name"] for row in rows.fetchall()}

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    @contextmanager
    def _reachable(self) -> Iterator[None]:
        """PostgreSQL: reconnect first if the connection broke; a lost connection is a 503."""
        if self.dialect == "sqlite":
            yield
            return
        import psycopg

        unavailable = DatabaseUnavailable("the database is unreachable; try again shortly")
        if self._connection.broken or self._connection.closed:
            assert self._url is not None
            self._connection.close()
            try:
                self._connection = _connect_postgresql(self._url)
            except psycopg.OperationalError:
                raise unavailable from None  # the detail is in the log, not in answers to callers
        try:
            yield
        except psycopg.OperationalError as error:
            if not self._connection.broken:
                raise  # a statement's own failure (a lock timeout, say), not a lost connection
            log.error("the database %s is unreachable: %s", self.where, " ".join(str(error).split()))
            raise unavailable from None

    def _translate(self, sql: str) -> str:
        if self.dialect == "sqlite":
            return sql
        return _placeholders(sql)


_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


def _placeholders(sql: str) -> str:
    """sqlite3's ``?`` and ``:name`` as psycopg's ``%s`` and ``%(name)s`` (the stores' SQL has
    no string literal with those characters in it, and no ``%``)."""
    return _NAMED.sub(r"%(\1)s", sql.replace("?", "%s"))


def open_database(url: str | None, default_sqlite: Path) -> Database:
    """The database ``url`` names, or the SQLite file ``default_sqlite`` when it names none."""
    if not url or url.startswith("sqlite:"):
        path = Path(url.removeprefix("sqlite:///")) if url and url != "sqlite://" else default_sqlite
        return open_sqlite(path)
    scheme = urlsplit(url).scheme
    if scheme in ("postgresql", "postgres"):
        return _postgresql(url)
    raise ConfigurationError(
        f"WRAPSERVE_DATABASE_URL {redact_url(url)!r}: use sqlite:///PATH or postgresql://USER:PASS@HOST/DB"
    )


def open_sqlite(path: Path) -> Database:
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.row_factory = sqlite3.Row
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")  # durable against a killed process
    connection.execute("PRAGMA busy_timeout=10000")
    return Database("sqlite", connection, str(path))


def _connect_postgresql(url: str) -> Any:
    import psycopg  # only where PostgreSQL is used
    from psycopg.rows import dict_row

    try:
        return psycopg.connect(
            url,
            autocommit=True,
            row_factory=dict_row,
            connect_timeout=5,
            # A peer that vanished without a word is noticed in seconds, not minutes, and no
            # statement or lock wait can hold the store for long.
            keepalives=1,
            keepalives_idle=5,
            keepalives_interval=2,
            keepalives_count=3,
            tcp_user_timeout=10_000,
            options="-c statement_timeout=15000 -c lock_timeout=10000",
        )
    except psycopg.OperationalError as error:
        log.error("cannot connect to the database %s: %s", redact_url(url), " ".join(str(error).split()))
        raise


def _postgresql(url: str) -> Database:
    import psycopg

    try:
        connection = _connect_postgresql(url)
    except psycopg.OperationalError as error:  # at start: the server does not start, saying why
        raise ConfigurationError(
            f"cannot connect to the database {redact_url(url)}: {' '.join(str(error).split())}"
        ) from None
    return Database("postgresql", connection, redact_url(url), url)
