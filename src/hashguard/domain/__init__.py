"""Frozen domain types shared by every stage of the pipeline; no I/O here."""

from hashguard.domain.banks import (
    Bank,
    BankEntry,
    BankKind,
    BankStats,
    ImportReport,
    RowError,
)
from hashguard.domain.matches import Match
from hashguard.domain.scans import FileResult, Outcome, RunStatus, ScanOptions, ScanRun
from hashguard.domain.signals import Algorithm, FileSignals, PdqHash

__all__ = [
    "Algorithm",
    "Bank",
    "BankEntry",
    "BankKind",
    "BankStats",
    "FileResult",
    "FileSignals",
    "ImportReport",
    "Match",
    "Outcome",
    "PdqHash",
    "RowError",
    "RunStatus",
    "ScanOptions",
    "ScanRun",
]
