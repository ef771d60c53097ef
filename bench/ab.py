"""A/B of the service's saturation throughput: this checkout against an earlier commit.

``python -m bench.ab REV [ROUNDS]`` checks ``REV`` out into a temporary git worktree and
runs ``hashguard serve`` from each tree in turn (A, B, A, B, …: the machine's other load
falls on both alike), each against a fresh home with the same bank and token, and
measures the closed-loop saturation of ``POST /v1/scan`` on the small 1 MP corpus
(workers x queue per worker clients, ``SECONDS`` each after a warm-up). Prints every
round, the medians and B/A. The server's code comes from ``PYTHONPATH`` (the tree's
``src``) in front of this virtualenv's editable install.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.config import scale_from_env
from bench.corpus import build_corpora
from bench.loadgen import Target, closed_loop
from bench.service import PLANS, QUEUE_PER_WORKER, WORKERS, _setup, make_bank, running_server
from bench.timing import median

SECONDS = 10.0
ROOT = Path(__file__).resolve().parent.parent


def _saturation(src: Path, files: tuple[Path, ...], rows: int) -> float:
    os.environ["PYTHONPATH"] = str(src)
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
            capacity = WORKERS * QUEUE_PER_WORKER
            closed_loop(target, capacity, 2.0)  # warm-up
            load = closed_loop(target, capacity, SECONDS)
            return sum(s.status == 200 for s in load.sent) / load.seconds


def main() -> int:
    if len(sys.argv) < 2:
        raise SystemExit("usage: python -m bench.ab REV [ROUNDS]")
    rev, rounds = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 3
    scale = scale_from_env()
    one = next(c for c in build_corpora(scale) if c.label == "1 MP")
    rows = PLANS[scale.name].bank_rows
    with tempfile.TemporaryDirectory(prefix="hashguard-ab-tree-") as tmp:
        tree = Path(tmp) / "a"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), rev],
            check=True,
            capture_output=True,
        )
        try:
            a: list[float] = []
            b: list[float] = []
            for number in range(rounds):
                a.append(_saturation(tree / "src", one.files, rows))
                b.append(_saturation(ROOT / "src", one.files, rows))
                print(f"round {number + 1}: A {a[-1]:.1f}/s  B {b[-1]:.1f}/s", flush=True)
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False
            )
    ma, mb = median(a), median(b)
    print(f"A = {rev}: median {ma:.1f} uploads/s; B = this checkout: median {mb:.1f} uploads/s")
    print(f"B/A = {mb / ma:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
