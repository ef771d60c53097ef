"""A/B of the service's saturation throughput: this checkout against an earlier commit.

``python -m bench.ab REV [ROUNDS [REV_B]]`` installs ``REV`` (and ``REV_B``, else B is
this checkout; each from a temporary git worktree) into a virtualenv of its own with
this checkout's constraints, then runs ``hashguard serve`` from each install in turn
(A, B, A, B, …: the machine's other load falls on both alike), each against a fresh
home with the same bank and token made by its own CLI, and measures the closed-loop
saturation of ``POST /v1/scan`` on the small 1 MP corpus (as many clients as one token
may have uploads in flight, ``SECONDS`` each after a warm-up) and the CPU the server
and its hashing workers spent per upload (which other load on a shared machine moves
far less than throughput). Prints every round, the medians and B/A of both.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from functools import partial
from pathlib import Path

import bench.cli
import bench.service
from bench.config import hashguard_executable, scale_from_env
from bench.corpus import build_corpora
from bench.loadgen import Target, closed_loop
from bench.service import CLIENTS, PLANS, _measured, _setup, make_bank, running_server
from bench.timing import median

SECONDS = 10.0
ROOT = Path(__file__).resolve().parent.parent


def _saturation(executable: Path, files: tuple[Path, ...], rows: int) -> tuple[float, float]:
    """(uploads/s at saturation, CPU ms the server and its workers spent per upload): the
    second barely moves when other work shares the machine, the first does."""
    # the bench's CLI calls and its server run this install's ``hashguard``
    for module in (bench.cli, bench.service):
        setattr(module, "hashguard_executable", lambda: executable)  # noqa: B010
    with tempfile.TemporaryDirectory(prefix="hashguard-ab-") as tmp:
        home = Path(tmp)
        token = _setup(home, make_bank(files, rows, home))
        with running_server(home, token) as server:
            target = Target(
                host=server.host,
                port=server.port,
                token=server.token,
                bodies=[p.read_bytes() for p in files],
            )
            closed_loop(target, CLIENTS, 2.0)  # warm-up
            load, (before, after) = _measured(
                server, partial(closed_loop, target, CLIENTS, SECONDS)
            )
            done = sum(s.status == 200 for s in load.sent)
            spent = after.server + after.workers - before.server - before.workers
            return done / load.seconds, 1000 * spent / max(done, 1)


def _install(rev: str, where: Path) -> Path:
    """``rev`` installed (not editable) in a virtualenv under ``where``: its ``hashguard``."""
    tree, venv = where / "tree", where / "venv"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), rev],
        check=True,
        capture_output=True,
    )
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "--quiet", "--constraint",
             str(ROOT / "constraints.txt"), str(tree)],
            check=True,
        )  # fmt: skip
    finally:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False
        )
    return venv / "bin" / "hashguard"


def main() -> int:
    if len(sys.argv) < 2:
        raise SystemExit("usage: python -m bench.ab REV_A [ROUNDS [REV_B]]  (B: this checkout)")
    rev, rounds = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 3
    rev_b = sys.argv[3] if len(sys.argv) > 3 else None
    scale = scale_from_env()
    one = next(c for c in build_corpora(scale) if c.label == "1 MP")
    rows = PLANS[scale.name].bank_rows
    with tempfile.TemporaryDirectory(prefix="hashguard-ab-tree-") as tmp:
        old = _install(rev, Path(tmp) / "a")
        new = hashguard_executable() if rev_b is None else _install(rev_b, Path(tmp) / "b")
        a: list[tuple[float, float]] = []
        b: list[tuple[float, float]] = []
        for number in range(rounds):
            a.append(_saturation(old, one.files, rows))
            b.append(_saturation(new, one.files, rows))
            print(
                f"round {number + 1}: A {a[-1][0]:.1f}/s {a[-1][1]:.1f} CPU ms/upload  "
                f"B {b[-1][0]:.1f}/s {b[-1][1]:.1f} CPU ms/upload",
                flush=True,
            )
    ma, mb = median([r for r, _ in a]), median([r for r, _ in b])
    ca, cb = median([c for _, c in a]), median([c for _, c in b])
    print(f"A = {rev}: median {ma:.1f} uploads/s, {ca:.1f} CPU ms/upload")
    print(f"B = {rev_b or 'this checkout'}: median {mb:.1f} uploads/s, {cb:.1f} CPU ms/upload")
    print(f"B/A throughput {mb / ma:.3f}; B/A CPU per upload {cb / ca:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
