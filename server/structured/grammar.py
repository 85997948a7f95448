"""JSON Schema -> constrained-decoding grammar, through outlines, vetted and cached.

outlines turns a JSON Schema into a regular expression that vLLM's outlines backend
enforces token by token. outlines silently ignores some keywords (numeric bounds,
``uniqueItems``, ``multipleOf``...); a grammar that ignores a keyword cannot guarantee
it, so such schemas are rejected here with a clear 400 instead, except where an exact
rewrite exists (a small integer range becomes an enum). Every answer is still validated
with ``jsonschema`` afterwards, as a second line of defence.

Compilation runs off the event loop with a wall-clock budget, and results are kept in
a bounded LRU keyed by the schema's canonical hash, so a flood of unique schemas
cannot exhaust memory. Inside the same killable process the regex is also built into
an automaton (outlines_core's ``Index`` over a small character vocabulary): patterns
the engine cannot build (backreferences, lookaround) or whose automaton is too large
(``(a|aa){1000}``, ``[a-z]{1,50000}``) are rejected with a 400 here, before they can
occupy the engine's own grammar compiler.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import multiprocessing
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

from outlines.types import JsonSchema
from outlines.types.dsl import to_regex

from server.engine.protocol import Constraint
from server.structured.policy import (
    GrammarLimits,
    SchemaRejected,
    answer_validator,
    json_depth,
    prepare_schema,
)

__all__ = [
    "CompiledGrammar",
    "GrammarCompiler",
    "GrammarLimits",
    "SchemaRejected",
    "compact_regex",
    "schema_key",
]


@dataclass(frozen=True)
class CompiledGrammar:
    key: str
    schema: dict[str, Any]
    regex: str
    compile_ms: float
    validator: Any = field(repr=False, compare=False)

    @property
    def constraint(self) -> Constraint:
        return Constraint(kind="regex", spec=self.regex)

    def validation_errors(self, value: Any) -> list[str]:
        return [
            f"{'/'.join(str(p) for p in error.absolute_path) or '(root)'}: {error.message}"
            for error in self.validator.iter_errors(value)
        ][:5]


def schema_key(schema: Any) -> str:
    canonical = json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class GrammarTooLarge(ValueError):
    """The regex builds, but into an automaton larger than the engine should be asked to index."""


def _vet_regex(regex: str, max_states: int) -> None:
    """Build the regex's automaton the way the engine will, on a tiny vocabulary.

    outlines_core raises ``ValueError`` for constructs it cannot build; the state count
    bounds the engine's own index build (states x vocabulary) and its memory.
    """
    from outlines_core import Index, Vocabulary

    chars = [chr(code) for code in range(32, 127)] + ["\n", "\u00e9", "\u4e2d"]
    index = Index(regex, Vocabulary(0, {char: [i + 1] for i, char in enumerate(chars)}))
    states = len(index.get_transitions())
    if states > max_states:
        raise GrammarTooLarge(
            f"the output grammar has {states} states; the limit is {max_states} "
            "(long fixed repetitions or length bounds make grammars large)"
        )


def _compile(prepared: dict[str, Any], max_states: int = 0) -> str:
    # Compact JSON: no free whitespace, so whitespace runaway cannot happen.
    regex = str(to_regex(JsonSchema(prepared, whitespace_pattern="")))
    if max_states:
        _vet_regex(regex, max_states)
    return regex


def compact_regex(schema: Any, limits: GrammarLimits | None = None) -> str:
    """The compact regex the engine is given for ``schema``, checked as a call's schema is
    (``SchemaRejected``), without the automaton-size vetting or the compile worker that
    ``GrammarCompiler`` adds: for benchmarks and tests that need the regex itself."""
    return _compile(prepare_schema(schema, limits or GrammarLimits()))


class GrammarCompiler:
    """Compiles schemas once and keeps them in a bounded LRU (entries and bytes)."""

    def __init__(
        self, limits: GrammarLimits | None = None, on_compiled: Callable[[float], None] | None = None
    ) -> None:
        self.limits = limits or GrammarLimits()
        self._cache: OrderedDict[str, CompiledGrammar] = OrderedDict()
        self._cache_bytes = 0
        self._inflight: dict[str, asyncio.Future[CompiledGrammar]] = {}
        # Compiles run in a separate process: one that overruns its budget is killed,
        # where a thread would keep burning a core after its caller gave up.
        self._pool: ProcessPoolExecutor | None = None
        self._started_pool: ProcessPoolExecutor | None = None  # workers already spawned
        self.hits = 0
        self.misses = 0
        # Told every fresh compile's duration in seconds (metrics); None = nobody listens.
        self.on_compiled = on_compiled

    def __len__(self) -> int:
        return len(self._cache)

    @property
    def cache_bytes(self) -> int:
        return self._cache_bytes

    async def compile(self, schema: Any) -> CompiledGrammar:
        if json_depth(schema) > 2 * self.limits.max_depth + 4:  # before anything recurses into it
            raise SchemaRejected(f"schema is nested deeper than {self.limits.max_depth} levels")
        key = schema_key(schema)
        if (hit := self._cache.get(key)) is not None:
            self._cache.move_to_end(key)
            self.hits += 1
            return hit
        if key in self._inflight:  # the same new schema arriving twice compiles once
            return await asyncio.shield(self._inflight[key])
        self.misses += 1
        future: asyncio.Future[CompiledGrammar] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            grammar = await self._compile_new(key, schema)
            future.set_result(grammar)
            return grammar
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            del self._inflight[key]

    async def _compile_new(self, key: str, schema: Any) -> CompiledGrammar:
        started = time.perf_counter()
        prepared = prepare_schema(schema, self.limits)
        regex = await self._run_compile(prepared)
        grammar = CompiledGrammar(
            key=key,
            schema=schema,
            regex=regex,
            compile_ms=(time.perf_counter() - started) * 1000,
            validator=answer_validator(schema),
        )
        self._remember(grammar)
        if self.on_compiled is not None:
            self.on_compiled(grammar.compile_ms / 1000)
        return grammar

    async def _run_compile(self, prepared: dict[str, Any]) -> str:
        """Compile in the pool within the budget; a pool killed under us by another
        request's overrun is not this schema's fault, so that compile is retried once."""
        loop = asyncio.get_running_loop()
        for attempt in range(2):
            pool = self._get_pool()
            await self._start_workers(pool)
            try:
                return await asyncio.wait_for(
                    loop.run_in_executor(pool, _compile, prepared, self.limits.max_grammar_states),
                    timeout=self.limits.compile_timeout_s,
                )
            except TimeoutError:
                self._kill_pool(pool)
                raise SchemaRejected(
                    f"schema took longer than {self.limits.compile_timeout_s:g}s to compile; simplify it"
                ) from None
            except (BrokenProcessPool, asyncio.CancelledError) as error:
                task = asyncio.current_task()
                if isinstance(error, asyncio.CancelledError) and task is not None and task.cancelling():
                    raise  # this request itself is being cancelled
                if self._pool is not pool and attempt == 0:
                    continue  # another compile's overrun killed the pool
                self._kill_pool(pool)  # our worker died (a crash, out of memory): never reuse it
                raise SchemaRejected(
                    "schema could not be compiled (the compiler process failed); simplify it"
                ) from None
            except GrammarTooLarge as error:
                raise SchemaRejected(str(error)) from None
            except (ValueError, RecursionError, TypeError) as error:
                raise SchemaRejected(
                    f"schema cannot be compiled to a grammar: {str(error).splitlines()[0][:200]}"
                ) from None
        raise AssertionError("unreachable")

    def _remember(self, grammar: CompiledGrammar) -> None:
        size = len(grammar.regex) * 2 + len(json.dumps(grammar.schema))
        if size > self.limits.cache_bytes:
            return
        self._cache[grammar.key] = grammar
        self._cache_bytes += size
        while len(self._cache) > self.limits.cache_entries or self._cache_bytes > self.limits.cache_bytes:
            _, evicted = self._cache.popitem(last=False)
            self._cache_bytes -= len(evicted.regex) * 2 + len(json.dumps(evicted.schema))

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            context = multiprocessing.get_context("spawn")  # never fork a process holding engine threads
            self._pool = ProcessPoolExecutor(max_workers=2, mp_context=context)
        return self._pool

    async def _start_workers(self, pool: ProcessPoolExecutor) -> None:
        """Start a fresh pool's workers outside the compile budget: on a loaded machine,
        spawning one (importing outlines) can take longer than the budget, and every
        compile after a killed pool would then time out in turn."""
        if self._started_pool is pool:
            return
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(pool, _compile, {"type": "boolean"}) for _ in range(2)))
        self._started_pool = pool

    def _kill_pool(self, pool: ProcessPoolExecutor) -> None:
        """Kill a pool whose worker overran; the next compile starts a fresh one."""
        if self._pool is pool:
            self._pool = None
        # A pool already shut down (two overruns at once kill it twice) has ``_processes`` None.
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.kill()
        pool.shutdown(wait=False, cancel_futures=True)

    def warm_up(self) -> None:
        """Start the worker processes now, so the first request does not pay for it."""
        self._get_pool().submit(_compile, {"type": "boolean"}).result()

    def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
