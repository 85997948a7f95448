"""The built-in catalogue. Registries are data: adding a wrapper means adding it here."""

from __future__ import annotations

from wrappers.base import Wrapper
from wrappers.catalogue.classify import Classify, Sentiment
from wrappers.catalogue.extract import Extract

__all__ = ["BUILTINS"]

BUILTINS: tuple[type[Wrapper], ...] = (
    Sentiment,
    Classify,
    Extract,
)
