"""JSON Schema -> constrained-decoding grammar and answer validator, vetted and cached.

One path for every schema (wrapper outputs, ``response_format``, tools): the keyword
policy (``server/structured/policy.py``) classifies and vets it, then it is compiled into
one of two grammar forms, both enforced by vLLM's guidance backend:

- ``regex``: outlines' regex, for schemas outlines enforces exactly, when asked for
  (wrapper outputs: the forced opening of a regex goes into the prompt, see
  ``server/structured/forced.py``, and label scoring reads it);
- ``json``: llguidance's JSON Schema grammar, for everything else (numeric bounds of any
  width, ``patternProperties``, ``allOf``, recursion...): it compiles in milliseconds.

Every answer is then checked by ``validator`` (``server/structured/validation.py``)
against the whole schema, validated-only keywords included.

Compilation runs in a killable worker process with a wall-clock budget, and results are
kept in a bounded LRU keyed by the schema's canonical hash and form, so a flood of unique
schemas cannot exhaust memory. An outlines regex is also built into an automaton there
(outlines_core's ``Index`` over a small character vocabulary): patterns whose automaton is
too large (``(a|aa){1000}``) are refused before they can reach the engine.
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
from typing import Any, Literal

from server.engine.protocol import Constraint
from server.structured.policy import GrammarLimits, KeywordUse, SchemaRejected, json_depth, plan_schema
from server.structured.validation import AnswerValidator, SchemaInvalid

__all__ = [
    "CompiledGrammar",
    "GrammarCompiler",
    "GrammarForm",
    "GrammarLimits",
    "SchemaRejected",
    "compact_regex",
    "schema_key",
]

GrammarForm = Literal["regex", "json"]
# "validator": checked answers only, for outputs answered without decoding (scored labels).
CompileMode = Literal["regex", "json", "validator"]


@dataclass(frozen=True)
class CompiledGrammar:
    key: str
    schema: dict[str, Any]
    constraint: Constraint | None  # None: validator only (nothing is decoded)
    compile_ms: float
    validator: AnswerValidator = field(repr=False, compare=False)
    uses: tuple[KeywordUse, ...] = field(default=(), repr=False, compare=False)
    warnings: tuple[str, ...] = ()
    # Some keyword is held by validation alone (a backtracking pattern, uniqueItems...).
    validated_only: bool = False

    @property
    def regex(self) -> str:
        """The outlines regex, '' when the grammar is in llguidance's JSON form."""
        return self.constraint.spec if self.constraint and self.constraint.kind == "regex" else ""

    def validation_errors(self, value: Any) -> list[str]:
        return self.validator.errors(value)


def schema_key(schema: Any) -> str:
    canonical = json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class GrammarTooLarge(ValueError):
    """The regex builds, but into an automaton larger than the engine should be asked to index."""


def _vet_regex(regex: str, max_states: int) -> None:
    """Build the regex's automaton the way outlines does, on a tiny vocabulary.

    outlines_core raises ``ValueError`` for constructs it cannot build; the state count
    bounds the size of any index built from it.
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


# outlines' numbers have unbounded digits, and a small model can loop inside one
# ("1.50000000000000111111..."); these admit every realistic value (16 digits before the
# point, 16 after, a 3-digit exponent) and nothing a model can run away in.
_UNBOUNDED_NUMBERS = (
    (
        r"((-)?(0|[1-9][0-9]*))(\.[0-9]+)?([eE][+-][0-9]+)?",
        r"((-)?(0|[1-9][0-9]{0,15}))(\.[0-9]{1,16})?([eE][+-][0-9]{1,3})?",
    ),
    (r"(-)?(0|[1-9][0-9]*)", r"(-)?(0|[1-9][0-9]{0,17})"),
)


def _outlines_regex(prepared: dict[str, Any], max_states: int = 0) -> str:
    from outlines.types import JsonSchema
    from outlines.types.dsl import to_regex

    # Compact JSON: no free whitespace, so whitespace runaway cannot happen.
    regex = str(to_regex(JsonSchema(prepared, whitespace_pattern="")))
    for unbounded, bounded in _UNBOUNDED_NUMBERS:
        regex = regex.replace(unbounded, bounded)
    if max_states:
        _vet_regex(regex, max_states)
    return regex


def _guidance_check(grammar_schema: str) -> list[str]:
    """Build llguidance's grammar for the schema, as vLLM's guidance backend will; its
    warnings, or ``ValueError`` with its error (unsatisfiable, unsupported...)."""
    import llguidance

    grammar = llguidance.LLMatcher.grammar_from_json_schema(grammar_schema)
    is_error, messages = llguidance.LLMatcher.validate_grammar_with_warnings(grammar, None)
    if is_error:
        raise ValueError(messages[0] if messages else "the grammar cannot be built")
    return list(messages)


def _compile(
    form: GrammarForm, payload: dict[str, Any], max_states: int = 0, fallback: dict[str, Any] | None = None
) -> tuple[str, list[str]]:
    """(the engine's constraint spec, warnings) for one form; runs in a worker process.
    ``fallback``: the JSON form to use when ``payload`` (its recursion bounded) cannot be."""
    if form == "regex":
        return _outlines_regex(payload, max_states), []
    spec = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    try:
        return spec, _guidance_check(spec)
    except ValueError:
        if fallback is None:
            raise
    spec = json.dumps(fallback, ensure_ascii=False, separators=(",", ":"))
    return spec, _guidance_check(spec)


def compact_regex(schema: Any, limits: GrammarLimits | None = None) -> str:
    """The compact outlines regex of ``schema`` (``SchemaRejected`` unless outlines
    enforces it exactly), without the automaton vetting or the worker of
    ``GrammarCompiler``: for benchmarks and tests that need the regex itself."""
    plan = plan_schema(schema, limits or GrammarLimits())
    if plan.outlines is None:
        raise SchemaRejected("outlines cannot enforce this schema exactly")
    return _outlines_regex(plan.outlines)


def _first_line(error: BaseException) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0][:300]


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

    async def compile(self, schema: Any, *, prefer: CompileMode = "json") -> CompiledGrammar:
        """The grammar and validator for ``schema``. ``prefer="regex"`` takes outlines'
        regex where outlines enforces the schema exactly (wrapper outputs), else the JSON
        form; ``"validator"`` checks the schema and builds only its validator."""
        if json_depth(schema) > 2 * self.limits.max_depth + 4:  # before anything recurses into it
            raise SchemaRejected(f"schema is nested deeper than {self.limits.max_depth} levels")
        try:
            key = f"{prefer}:{schema_key(schema)}"
        except UnicodeEncodeError:
            raise SchemaRejected("the schema holds a lone surrogate (invalid Unicode)") from None
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
            grammar = await self._compile_new(key, schema, prefer)
            future.set_result(grammar)
            return grammar
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            del self._inflight[key]

    async def _compile_new(self, key: str, schema: Any, prefer: CompileMode) -> CompiledGrammar:
        started = time.perf_counter()
        plan = plan_schema(schema, self.limits)
        try:
            validator = await asyncio.to_thread(AnswerValidator, plan.validation)
        except SchemaInvalid as error:
            raise SchemaRejected(f"invalid JSON Schema: {error}") from None
        constraint: Constraint | None = None
        warnings: list[str] = []
        if prefer != "validator":
            form: GrammarForm = "regex" if prefer == "regex" and plan.outlines is not None else "json"
            if form == "regex":
                spec, warnings = await self._run_compile(form, plan.outlines)
            else:
                spec, warnings = await self._run_compile(form, plan.grammar, plan.grammar_unbounded)
            constraint = Constraint(kind=form, spec=spec)
        grammar = CompiledGrammar(
            key=key,
            schema=schema,
            constraint=constraint,
            compile_ms=(time.perf_counter() - started) * 1000,
            validator=validator,
            uses=plan.uses,
            warnings=tuple(warnings),
            validated_only=any(use.enforcement == "validated" for use in plan.uses),
        )
        self._remember(grammar)
        if self.on_compiled is not None:
            self.on_compiled(grammar.compile_ms / 1000)
        return grammar

    async def _run_compile(
        self, form: GrammarForm, payload: Any, fallback: dict[str, Any] | None = None
    ) -> tuple[str, list[str]]:
        """Compile in the pool within the budget; a pool killed under us by another
        request's overrun is not this schema's fault, so that compile is retried once."""
        loop = asyncio.get_running_loop()
        for attempt in range(2):
            pool = self._get_pool()
            await self._start_workers(pool)
            try:
                return await asyncio.wait_for(
                    loop.run_in_executor(
                        pool, _compile, form, payload, self.limits.max_grammar_states, fallback
                    ),
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
                    f"schema cannot be compiled to a grammar: {_first_line(error)}"
                ) from None
        raise AssertionError("unreachable")

    def _remember(self, grammar: CompiledGrammar) -> None:
        size = _size(grammar)
        if size > self.limits.cache_bytes:
            return
        self._cache[grammar.key] = grammar
        self._cache_bytes += size
        while len(self._cache) > self.limits.cache_entries or self._cache_bytes > self.limits.cache_bytes:
            _, evicted = self._cache.popitem(last=False)
            self._cache_bytes -= _size(evicted)

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
        await asyncio.gather(
            *(loop.run_in_executor(pool, _compile, "regex", {"type": "boolean"}) for _ in range(2))
        )
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
        self._get_pool().submit(_compile, "regex", {"type": "boolean"}).result()

    def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def _size(grammar: CompiledGrammar) -> int:
    spec = grammar.constraint.spec if grammar.constraint else ""
    return len(spec) * 2 + len(json.dumps(grammar.schema))
