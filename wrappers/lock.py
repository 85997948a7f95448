"""The fingerprint lock: each released ``name@version`` keeps the content it was released with.

A wrapper's fingerprint hashes everything that shapes its answers (instructions,
template, schemas, sampling, model). ``wrappers/fingerprints.lock.json`` records the
fingerprint of every built-in; a change that alters a fingerprint without a version bump
is caught by the test suite, so a pinned ``name@1.0.0`` never silently changes meaning.

Regenerate after a deliberate change with a version bump::

    python -m wrappers.lock            # add new versions; refuses changed ones
    python -m wrappers.lock --check    # exit 1 and say what differs
    python -m wrappers.lock --force    # overwrite changed entries (only before a release)
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from wrappers.base import Wrapper

__all__ = ["LOCK_PATH", "compute_lock", "lock_problems", "read_lock", "write_lock"]

LOCK_PATH = Path(__file__).resolve().parent / "fingerprints.lock.json"


def compute_lock(wrappers: Iterable[type[Wrapper]]) -> dict[str, str]:
    """``name@version -> fingerprint`` for the given wrappers, sorted by reference."""
    return dict(sorted((wrapper.ref(), wrapper.fingerprint()) for wrapper in wrappers))


def read_lock(path: Path = LOCK_PATH) -> dict[str, str]:
    """The lock file's entries, or an empty lock when the file does not exist yet."""
    if not path.exists():
        return {}
    entries = json.loads(path.read_text())
    if not isinstance(entries, dict) or not all(isinstance(v, str) for v in entries.values()):
        raise ValueError(f"{path} must map 'name@version' to a fingerprint string")
    return entries


def lock_problems(wrappers: Iterable[type[Wrapper]], lock: Mapping[str, str]) -> list[str]:
    """What is wrong between the wrappers and the lock: changed fingerprints, missing entries."""
    problems = []
    for ref, fingerprint in compute_lock(wrappers).items():
        if ref not in lock:
            problems.append(f"{ref} is not in the lock; run `python -m wrappers.lock` to add it")
        elif lock[ref] != fingerprint:
            problems.append(
                f"{ref} changed (fingerprint {fingerprint}, locked {lock[ref]}): bump the version "
                "of a wrapper whose instructions, template, schemas, sampling or model change"
            )
    return problems


def write_lock(
    wrappers: Iterable[type[Wrapper]], path: Path = LOCK_PATH, *, force: bool = False
) -> dict[str, str]:
    """Write the lock for ``wrappers``; changed fingerprints need ``force``."""
    current = compute_lock(wrappers)
    changed = [ref for ref, fp in read_lock(path).items() if ref in current and current[ref] != fp]
    if changed and not force:
        raise ValueError(
            f"fingerprints changed without a version bump: {', '.join(changed)}; bump the version"
        )
    path.write_text(json.dumps(current, indent=2) + "\n")
    return current


def main(argv: list[str] | None = None) -> int:
    from wrappers.catalogue import BUILTINS

    parser = argparse.ArgumentParser(prog="python -m wrappers.lock", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="only check; exit 1 when the lock is out of date"
    )
    parser.add_argument("--force", action="store_true", help="overwrite changed fingerprints")
    args = parser.parse_args(argv)
    if args.check:
        problems = lock_problems(BUILTINS, read_lock())
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        return 1 if problems else 0
    try:
        entries = write_lock(BUILTINS, force=args.force)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {len(entries)} fingerprints to {LOCK_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
