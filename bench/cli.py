"""Running the real ``hashguard`` command as a subprocess, against a store of our choosing."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bench.config import hashguard_executable


class BenchError(RuntimeError):
    """A measured command did not do what the figure assumes; the figure would be meaningless."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Finished:
    seconds: float
    returncode: int
    stdout: str
    stderr: str

    def tail(self, lines: int = 15) -> str:
        return "\n".join(self.stderr.splitlines()[-lines:])


def child_env(home: Path, database_url: str | None = None) -> dict[str, str]:
    """Our environment without any HASHGUARD_* setting, plus a home (and database) of our own."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("HASHGUARD_")}
    env["HASHGUARD_HOME"] = str(home)
    if database_url is not None:
        env["HASHGUARD_DATABASE_URL"] = database_url
    env["COLUMNS"] = "200"  # rich wraps stderr messages at the terminal width
    return env


def run_hashguard(args: list[str], *, home: Path, database_url: str | None = None) -> Finished:
    """Run ``hashguard ARGS`` to completion; ``seconds`` is its wall time, start-up included."""
    command = [str(hashguard_executable()), *args]
    env = child_env(home, database_url)
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    return Finished(
        seconds=seconds, returncode=done.returncode, stdout=done.stdout, stderr=done.stderr
    )
