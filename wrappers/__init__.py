"""Wrappers: the abstraction, the catalogue and the typed client (no FastAPI, no vLLM)."""

from wrappers.base import Example, Wrapper, WrapperSampling
from wrappers.client import AsyncWrapserveClient, ServerUnreachable, WrapperCallError, WrapserveClient

__all__ = [
    "AsyncWrapserveClient",
    "Example",
    "ServerUnreachable",
    "Wrapper",
    "WrapperCallError",
    "WrapperSampling",
    "WrapserveClient",
]
