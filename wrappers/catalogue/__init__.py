"""The built-in catalogue. Registries are data: adding a wrapper means adding it here."""

from __future__ import annotations

from wrappers.base import Wrapper
from wrappers.catalogue.classify import (
    Classify,
    ClassifyFirstRelease,
    ClassifySecondRelease,
    DetectLanguage,
    DetectLanguageFirstRelease,
    Intent,
    IntentFirstRelease,
    IntentSecondRelease,
    Sentiment,
    SentimentFirstRelease,
)
from wrappers.catalogue.evaluate import (
    Compare,
    CompareFirstRelease,
    FactCheck,
    FactCheckFirstRelease,
    Grade,
    GradeFirstRelease,
)
from wrappers.catalogue.extract import (
    Contact,
    ContactFirstRelease,
    Entities,
    EntitiesFirstRelease,
    Extract,
    ExtractFirstRelease,
    Invoice,
    InvoiceFirstRelease,
    Keywords,
    KeywordsFirstRelease,
)
from wrappers.catalogue.report import Report, ReportFirstRelease, Summarize, SummarizeFirstRelease
from wrappers.catalogue.transform import (
    Redact,
    RedactFirstRelease,
    Rewrite,
    RewriteFirstRelease,
    Translate,
    TranslateFirstRelease,
)

__all__ = ["BUILTINS"]

# Newest version of each name first; released versions stay served, locked by fingerprint.
BUILTINS: tuple[type[Wrapper], ...] = (
    # classify
    Sentiment,
    SentimentFirstRelease,
    Classify,
    ClassifySecondRelease,
    ClassifyFirstRelease,
    Intent,
    IntentSecondRelease,
    IntentFirstRelease,
    DetectLanguage,
    DetectLanguageFirstRelease,
    # extract
    Extract,
    ExtractFirstRelease,
    Entities,
    EntitiesFirstRelease,
    Contact,
    ContactFirstRelease,
    Invoice,
    InvoiceFirstRelease,
    Keywords,
    KeywordsFirstRelease,
    # evaluate
    Grade,
    GradeFirstRelease,
    Compare,
    CompareFirstRelease,
    FactCheck,
    FactCheckFirstRelease,
    # report
    Report,
    ReportFirstRelease,
    Summarize,
    SummarizeFirstRelease,
    # transform
    Rewrite,
    RewriteFirstRelease,
    Translate,
    TranslateFirstRelease,
    Redact,
    RedactFirstRelease,
)
