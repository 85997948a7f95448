"""On/off switches read from the environment by Wrapserve's vLLM plugins.

vLLM starts its worker and engine-core processes itself, so no settings object reaches the
plugins there; the engine exports each switch from ``Settings`` before vLLM starts, and a
plugin reads it back with ``switched_on``.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["switched_on"]

_OFF = frozenset({"0", "false", "f", "no", "n", "off"})  # pydantic's spellings of False


def switched_on(environ: Mapping[str, str], name: str) -> bool:
    """Whether ``environ`` leaves switch ``name`` on (it is unless the variable says off)."""
    return environ.get(name, "true").strip().lower() not in _OFF
