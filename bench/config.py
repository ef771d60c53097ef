"""Run configuration: the BENCH_* knobs, where results and caches go, which hashguard runs."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent
OUT_DIR = BENCH_DIR / "out"
CACHE_DIR = OUT_DIR / "corpus"
RESULTS_FILE = OUT_DIR / "results.json"

#: Every timed figure is measured this many times (round-robin) and reported as the median.
REPEATS = 3


@dataclass(frozen=True, kw_only=True, slots=True)
class Scale:
    name: str
    files_1mp: int
    files_12mp: int
    bank_rows: int


SCALES = {
    "small": Scale(name="small", files_1mp=100, files_12mp=6, bank_rows=100_000),
    "full": Scale(name="full", files_1mp=1000, files_12mp=90, bank_rows=1_000_000),
}


def scale_from_env() -> Scale:
    name = os.environ.get("BENCH_SCALE", "small")
    try:
        return SCALES[name]
    except KeyError:
        raise SystemExit(f"BENCH_SCALE must be one of {', '.join(SCALES)}, not {name!r}") from None


SECTIONS = (
    "scan", "fidelity", "import", "exact", "index", "service", "audit", "reports", "statements",
    "tenants",
    "client",
    "retro",
    "notices",
    "stats",
    "ray",
    "objects",
    "video",
)  # fmt: skip
#: the sections that read the generated 1 MP / 12 MP corpora (built only when one runs)
CORPUS_SECTIONS = frozenset({"scan", "service", "client"})


def sections_from_env() -> frozenset[str]:
    """``BENCH_ONLY=scan,index`` runs only those sections (default: all of them)."""
    named = os.environ.get("BENCH_ONLY")
    if not named:
        return frozenset(SECTIONS)
    chosen = frozenset(part.strip() for part in named.split(",") if part.strip())
    unknown = chosen - set(SECTIONS)
    if unknown:
        raise SystemExit(f"BENCH_ONLY names unknown sections {sorted(unknown)}; use {SECTIONS}")
    return chosen


def postgres_url() -> str | None:
    return os.environ.get("BENCH_POSTGRES_URL") or None


def hashguard_executable() -> Path:
    """The ``hashguard`` script next to this interpreter (the project's virtualenv)."""
    beside = Path(sys.executable).parent / "hashguard"
    if beside.exists():
        return beside
    found = shutil.which("hashguard")
    if found is None:
        raise SystemExit("no hashguard executable next to this Python or on PATH")
    return Path(found)
