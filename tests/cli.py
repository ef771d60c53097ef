"""Running the real ``hashguard`` command in a subprocess, as an operator would."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

#: Without CAP_DAC_OVERRIDE even root gets EACCES on a mode-000 file.
NO_DAC = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]


def command(*args: str, as_unprivileged_root: bool = False) -> list[str]:
    prefix = (
        NO_DAC if as_unprivileged_root and os.geteuid() == 0 and shutil.which("setpriv") else []
    )
    return [*prefix, sys.executable, "-m", "hashguard", *args]


def hashguard(
    *args: str, check: int | None = 0, timeout: float = 300, **kw: Any
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        command(*args, **kw), check=False, capture_output=True, text=True, timeout=timeout
    )
    if check is not None:
        assert done.returncode == check, (done.returncode, done.stdout[-3000:], done.stderr[-3000:])
    return done


def json_lines(stdout: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The per-file objects and the summary of ``scan --json``."""
    objects = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    files = [o for o in objects if o["type"] == "file"]
    (summary,) = [o for o in objects if o["type"] == "summary"]
    return files, summary


def write_known_list(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    path.write_text("algorithm,hash,entry_id\n" + "".join(f"{a},{h},{e}\n" for a, h, e in rows))
    return path
