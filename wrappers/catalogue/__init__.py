"""The built-in catalogue. Registries are data: adding a wrapper means adding it here."""

from __future__ import annotations

from wrappers.base import Wrapper
from wrappers.catalogue.classify import (
    Classify,
    ClassifyFirstRelease,
    DetectLanguage,
    Intent,
    IntentFirstRelease,
    Sentiment,
)
from wrappers.catalogue.evaluate import Compare, FactCheck, Grade
from wrappers.catalogue.extract import Contact, Entities, Extract, ExtractFirstRelease, Invoice, Keywords
from wrappers.catalogue.report import Report, Summarize
from wrappers.catalogue.transform import Redact, Rewrite, Translate

__all__ = ["BUILTINS"]

BUILTINS: tuple[type[Wrapper], ...] = (
    # classify
    Sentiment,
    Classify,
    ClassifyFirstRelease,
    Intent,
    IntentFirstRelease,
    DetectLanguage,
    # extract
    Extract,
    ExtractFirstRelease,
    Entities,
    Contact,
    Invoice,
    Keywords,
    # evaluate
    Grade,
    Compare,
    FactCheck,
    # report
    Report,
    Summarize,
    # transform
    Rewrite,
    Translate,
    Redact,
)
