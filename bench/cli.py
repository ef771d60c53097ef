"""Running the real ``hashguard`` command as a subprocess, against a store of our choosing."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.config import OUT_DIR, hashguard_executable

#: Where the children keep their bytecode. The environment these sessions run in sets
#: PYTHONDONTWRITEBYTECODE, which would make every start-up compile hashguard afresh.
PYCACHE = OUT_DIR / "pycache"


class BenchError(RuntimeError):
    """A measured command did not do what the figure assumes; the figure would be meaningless."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Finished:
    seconds: float
    returncode: int
    stdout: list[str]
    #: When each stdout line arrived, in seconds since the command was started.
    arrivals: list[float]
    stderr: str

    def tail(self, lines: int = 15) -> str:
        return "\n".join(self.stderr.splitlines()[-lines:])


def child_env(home: Path, database_url: str | None = None) -> dict[str, str]:
    """Our environment without any HASHGUARD_* setting, plus a home (and database) of our own."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("HASHGUARD_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    env["PYTHONUNBUFFERED"] = "1"  # each result line arrives when it is written
    env["COLUMNS"] = "200"  # rich wraps stderr messages at the terminal width
    env["HASHGUARD_HOME"] = str(home)
    if database_url is not None:
        env["HASHGUARD_DATABASE_URL"] = database_url
    return env


def run_hashguard(args: list[str], *, home: Path, database_url: str | None = None) -> Finished:
    """Run ``hashguard ARGS`` to completion; ``seconds`` is its wall time, start-up included."""
    command = [str(hashguard_executable()), *args]
    env = child_env(home, database_url)
    lines: list[str] = []
    arrivals: list[float] = []
    with tempfile.TemporaryFile("w+", encoding="utf-8") as errors:
        start = time.perf_counter()
        with subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=errors, text=True
        ) as child:
            assert child.stdout is not None
            for line in child.stdout:
                arrivals.append(time.perf_counter() - start)
                lines.append(line)
            returncode = child.wait()
        seconds = time.perf_counter() - start
        errors.seek(0)
        stderr = errors.read()
    return Finished(
        seconds=seconds, returncode=returncode, stdout=lines, arrivals=arrivals, stderr=stderr
    )
