"""The header printed above the results: the machine, the code measured and the command."""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
from importlib.metadata import version

from bench.config import PROJECT_DIR, Scale


def nproc() -> int:
    """What ``nproc`` prints: the CPUs this process may run on."""
    return len(os.sched_getaffinity(0))


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_revision() -> str:
    """Short commit of the project, marked ``+dirty`` when src/ has uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=PROJECT_DIR,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"],
            cwd=PROJECT_DIR,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}+dirty" if dirty else head


def command() -> str:
    """The command line that reproduces this run, with the BENCH_* knobs that were set."""
    knobs = [f"BENCH_SCALE={os.environ.get('BENCH_SCALE', 'small')}"]
    if os.environ.get("BENCH_POSTGRES_URL"):
        knobs.append("BENCH_POSTGRES_URL=<set>")
    python = (
        os.path.relpath(sys.executable)
        if sys.executable.startswith(os.getcwd())
        else sys.executable
    )
    return " ".join([*knobs, shlex.join([python, "-m", "bench", *sys.argv[1:]])])


def describe(scale: Scale) -> dict[str, object]:
    return {
        "nproc": nproc(),
        "cpu_model": cpu_model(),
        "python": platform.python_version(),
        "hashguard": f"{version('hashguard')} @ {git_revision()}",
        "scale": scale.name,
        "command": command(),
    }
