"""Service figures: ``hashguard serve`` under open-loop load at rising rates, against HMA's path.

A real ``hashguard serve`` runs as a subprocess on a loopback port, with a fresh SQLite
home, ``WORKERS`` hashing workers, a demo bank of made-up MD5 and PDQ rows plus a few
planted corpus images (so some uploads match), and a token with the ``scan`` scope.
``bench.loadgen`` posts the corpus's JPEGs to ``POST /v1/scan`` as raw bodies.

1. Saturation: a closed loop with as many clients as the server admits at once
   (workers x queue per worker); its accepted answers per second.
2. Open-loop steps (Poisson arrivals) at fractions of that rate; per step the accepted
   throughput, p50/p95/p99 of accepted (200) latency, the refusals (503/429) and
   their p99, and the CPU each side spent.
3. Baseline, in this process before the server starts, on one core: HMA's per-request
   work, i.e. MD5 of the file (looked up in a set) plus threatexchange's
   ``PdqSignal.hash_from_file`` and a ``PDQIndex`` query over the bank's PDQ rows.

The generator shares the machine's cores with the server (it is the benchmark's own
process); its CPU share is reported with every step.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx
from rich.console import Console

from bench.cli import BenchError, child_env, run_hashguard
from bench.config import REPEATS, Scale, hashguard_executable
from bench.corpus import Corpus
from bench.loadgen import (
    Cpu,
    Figures,
    Load,
    Target,
    closed_loop,
    figures,
    number_or_dash,
    open_loop,
    step_table,
)
from bench.machine import nproc
from bench.report import FAIL, INFO, PASS, Row
from bench.timing import median, timed
from hashguard.hashing.kernel import HashOptions, hash_path
from hashguard.settings import Settings
from hashguard.web.limits import token_cap

BANK = "bench-service"
#: Hashing workers of the server: one per core of the 2-core reference machine.
WORKERS = 2
QUEUE_PER_WORKER: int = Settings.model_fields["queue_per_worker"].default
#: The saturation loop's clients: as many uploads as the one token may have in flight (a
#: token holds at most half the server's slots; more clients of it would only measure
#: how fast the server answers their 429s)
CLIENTS = token_cap(WORKERS * QUEUE_PER_WORKER, Settings.model_fields["token_concurrency"].default)
#: Open-loop steps, as fractions of the saturation rate.
STEPS = {"1 MP": (0.3, 0.5, 0.7, 1.0, 1.5, 2.0), "12 MP": (0.7, 2.0)}
#: Corpus files whose PDQ hash (5 bits flipped) or MD5 is planted in the bank.
PLANTED_PDQ, PLANTED_MD5 = (0, 7), (3,)
LATENCY_TARGET_MS, REFUSAL_TARGET_MS = 100.0, 50.0
#: Our server on WORKERS cores over HTTP must beat HMA's path ideally spread on as many.
THROUGHPUT_TARGET = float(WORKERS)


@dataclass(frozen=True, kw_only=True, slots=True)
class Plan:
    bank_rows: int
    step_seconds: float


PLANS = {
    "small": Plan(bank_rows=5_000, step_seconds=10.0),
    "full": Plan(bank_rows=50_000, step_seconds=30.0),
}
#: Cores busy with other jobs during a step beyond which its figures are flagged.
OTHER_LOAD_WARNING = 0.1
#: Tries at measuring saturation undisturbed by other jobs, PAUSE seconds apart.
SATURATION_ATTEMPTS, PAUSE = 3, 5.0
Say = Callable[[object], None]


# -- the bank -----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Bank:
    csv: Path
    pdq: tuple[str, ...]
    md5: frozenset[str]
    #: Indexes into the 1 MP corpus of the files that must come out ``matched``.
    planted: frozenset[int]


def _flip(value: str, bits: int, rng: random.Random) -> str:
    number = int(value, 16)
    for bit in rng.sample(range(256), bits):
        number ^= 1 << bit
    return f"{number:064x}"


def make_bank(files: tuple[Path, ...], rows: int, folder: Path) -> Bank:
    """``rows`` made-up rows, half MD5 and half PDQ, plus the planted files' hashes."""
    rng = random.Random(rows)
    # Never all zero: the importer rightly refuses that hash.
    pdq = [f"{rng.getrandbits(256) or 1:064x}" for _ in range(rows // 2)]
    md5 = [f"{rng.getrandbits(128):032x}" for _ in range(rows - rows // 2)]
    options = HashOptions(max_pixels=Settings.model_fields["max_pixels"].default)
    for index in PLANTED_PDQ:
        signals = hash_path(str(files[index]), options).signals
        if signals is None or not signals.pdq:
            raise BenchError(f"cannot hash planted file {files[index]}")
        pdq.append(_flip(signals.pdq[0].value, 5, rng))
    md5 += [hashlib.md5(files[index].read_bytes()).hexdigest() for index in PLANTED_MD5]
    csv = folder / "bank.csv"
    with csv.open("w", encoding="ascii") as out:
        out.write("algorithm,hash,entry_id,category\n")
        out.writelines(f"pdq,{value},p{n},bench\n" for n, value in enumerate(pdq))
        out.writelines(f"md5,{value},m{n},bench\n" for n, value in enumerate(md5))
    return Bank(
        csv=csv,
        pdq=tuple(pdq),
        md5=frozenset(md5),
        planted=frozenset(PLANTED_PDQ + PLANTED_MD5),
    )


# -- the baseline -------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Baseline:
    #: Files/s on one core.
    rate: float
    #: Seconds of each pass over the corpus.
    seconds: list[float]
    #: Files the path matched (by MD5 or PDQ within 31).
    matched: int


def hma_baseline(files: tuple[Path, ...], bank: Bank, repeats: int) -> Baseline:
    """HMA's hash-and-lookup of each file, in this process on one core."""
    from threatexchange.signal_type.pdq.pdq_index import PDQIndex  # noqa: PLC0415
    from threatexchange.signal_type.pdq.signal import PdqSignal  # noqa: PLC0415

    index = PDQIndex((value, n) for n, value in enumerate(bank.pdq))
    matched: list[bool] = []

    def work() -> None:
        matched.clear()
        for path in files:
            hit = hashlib.md5(path.read_bytes()).hexdigest() in bank.md5
            hit |= bool(index.query(PdqSignal.hash_from_file(path)))
            matched.append(hit)

    seconds = [timed(work) for _ in range(repeats)]
    return Baseline(rate=len(files) / median(seconds), seconds=seconds, matched=sum(matched))


# -- the server ---------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Server:
    host: str
    port: int
    pid: int
    token: str


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _setup(home: Path, bank: Bank) -> str:
    """Import the bank and create a scan token in ``home``; returns the token."""
    imported = run_hashguard(
        ["banks", "import", BANK, str(bank.csv), "--format", "csv", "--source", "bench"],
        home=home,
    )
    if imported.returncode != 0:
        raise BenchError(f"bank import failed\n{imported.tail()}")
    created = run_hashguard(["tokens", "create", "bench-load", "--scope", "scan"], home=home)
    secret = "".join(created.stdout).strip()
    if created.returncode != 0 or not secret:
        raise BenchError(f"token creation failed\n{created.tail()}")
    return secret


@contextmanager
def running_server(home: Path, token: str, *, ready_seconds: float = 60) -> Iterator[Server]:
    """``hashguard serve`` on a free loopback port until the block ends (ready when yielded,
    within ``ready_seconds``: a large bank's index takes a while to load)."""
    port = _free_port()
    env = child_env(home) | {"HASHGUARD_WORKERS": str(WORKERS)}
    log = home / "serve.log"
    with log.open("w") as errors:
        child = subprocess.Popen(
            [str(hashguard_executable()), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=errors,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_seconds
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if child.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"hashguard serve did not become ready\n{log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield Server(host="127.0.0.1", port=port, pid=child.pid, token=token)
    finally:
        family = _descendants(child.pid)
        child.send_signal(signal.SIGINT)
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        for pid in family:  # pool workers the server failed to stop: ours to end
            if _ours(pid):
                os.kill(pid, signal.SIGKILL)


# -- CPU of the server's processes --------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float, float] | None:
    """(parent pid, own CPU seconds, CPU seconds of reaped children) of a process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    # After "(comm)": state ppid ... utime(14) stime(15) cutime(16) cstime(17), 1-based.
    ppid, utime, stime, cutime, cstime = (int(fields[i]) for i in (1, 11, 12, 13, 14))
    return ppid, (utime + stime) / _TICK, (cutime + cstime) / _TICK


def _processes() -> dict[int, tuple[int, float, float]]:
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (info := _stat(int(entry))) is not None:
            found[int(entry)] = info
    return found


def _descendants(root: int, table: dict[int, tuple[int, float, float]] | None = None) -> list[int]:
    table = _processes() if table is None else table
    family, frontier = [], [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, (ppid, _, _) in table.items() if ppid == parent]
        family += children
        frontier += children
    return family


def _ours(pid: int) -> bool:
    """Whether ``pid`` is still one of the server's Python processes (not a reused pid)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"multiprocessing" in command or b"hashguard" in command


def _machine_busy() -> float:
    with open("/proc/stat", encoding="ascii") as stat:
        ticks = [int(n) for n in stat.readline().split()[1:]]
    idle, iowait = ticks[3], ticks[4]
    return (sum(ticks[:8]) - idle - iowait) / _TICK


def server_cpu(pid: int) -> Cpu:
    table = _processes()
    own = table.get(pid, (0, 0.0, 0.0))[1]
    children = _descendants(pid, table)
    # A recycled worker's time moves into its reaped parent's cutime: counted once either way.
    workers = sum(table[p][1] + table[p][2] for p in children)
    return Cpu(server=own, workers=workers, machine=_machine_busy(), children=frozenset(children))


# -- the sweep ----------------------------------------------------------------------------


def _measured(server: Server, run: Callable[[], Load]) -> tuple[Load, tuple[Cpu, Cpu]]:
    before = server_cpu(server.pid)
    load = run()
    return load, (before, server_cpu(server.pid))


def sweep(
    server: Server, corpus: Corpus, expect: Callable[[int], str], plan: Plan, say: Say
) -> list[Figures]:
    """Closed-loop saturation, then the open-loop steps of ``STEPS[corpus.label]``."""
    target = Target(
        host=server.host,
        port=server.port,
        token=server.token,
        bodies=[p.read_bytes() for p in corpus.files],
    )
    clients = CLIENTS
    closed_loop(target, clients, 2.0)  # untimed: warms the workers and their caches
    # Every step's rate derives from this one: measured again while other jobs disturb it.
    for attempt in range(SATURATION_ATTEMPTS):
        if attempt:
            say(f"service: other jobs disturbed the saturation measurement; again in {PAUSE:g} s")
            time.sleep(PAUSE)
        load, cpu = _measured(server, partial(closed_loop, target, clients, plan.step_seconds))
        saturated = figures(corpus.label, None, load, cpu, expect, LATENCY_TARGET_MS)
        _report(saturated, say)
        if saturated.other <= OTHER_LOAD_WARNING:
            break
    steps = [saturated]
    for number, fraction in enumerate(STEPS[corpus.label]):
        time.sleep(1.0)
        rate = fraction * saturated.throughput
        load, cpu = _measured(
            server,
            partial(open_loop, target, rate, plan.step_seconds, seed=number, first=number * 17),
        )
        step = figures(corpus.label, fraction, load, cpu, expect, LATENCY_TARGET_MS)
        _report(step, say)
        steps.append(step)
    return steps


def _report(step: Figures, say: Say) -> None:
    say(_line(step))
    if step.other > OTHER_LOAD_WARNING:
        say(f"[yellow]warning:[/yellow] other jobs used {step.other:.2f} cores during this step")


def _line(step: Figures) -> str:
    offered = f"{step.offered:.1f}/s offered, " if step.offered is not None else ""
    return (
        f"service {step.name}: {offered}{step.throughput:.1f}/s accepted, p50/p95/p99 "
        f"{step.quantiles} ms, refused {step.refused}/{step.sent} "
        f"(p99 {number_or_dash(step.refusal_p99)} ms), errors {step.errors}, "
        f"generator {step.generator:.0%} "
        f"of a core, {step.recycled} workers recycled, other jobs {step.other:.2f} cores"
    )


# -- rows ---------------------------------------------------------------------------------


def _verdict(ok: bool) -> str:
    return PASS if ok else FAIL


def _step_row(step: Figures) -> Row:
    what = (
        f"closed loop, {step.clients} clients"
        if step.fraction is None
        else f"{step.fraction:.0%} of saturation, Poisson {step.offered:.1f}/s"
    )
    value = (
        f"{step.throughput:.1f}/s accepted; p50/p95/p99 {step.quantiles} ms; "
        f"refused {step.refused}/{step.sent}"
        + (f" (p99 {number_or_dash(step.refusal_p99)} ms)" if step.refused else "")
        + (f"; {step.errors} errors" if step.errors else "")
    )
    numbers = {
        "offered_per_s": step.offered,
        "accepted_per_s": step.throughput,
        "sent": step.sent,
        "accepted": step.accepted,
        "refused": step.refused,
        "errors": step.errors,
        "wrong_outcomes": step.wrong,
        "p50_ms": step.p50,
        "p95_ms": step.p95,
        "p99_ms": step.p99,
        "max_ms": step.slowest,
        "refusal_p99_ms": step.refusal_p99,
        "unserved_share": step.unserved,
        "lag_p99_ms": step.lag_p99,
        "generator_cpu_share": step.generator,
        "server_cpu_ms_per_request": step.server_ms,
        "workers_cpu_ms_per_request": step.workers_ms,
        "workers_recycled": step.recycled,
        "other_cores_busy": step.other,
    }
    return Row(
        figure=f"service {step.corpus}, {what}",
        value=value,
        unit="",
        details={key: float(v) for key, v in numbers.items() if v is not None},
    )


def _at(steps: list[Figures], fraction: float) -> Figures:
    return next(step for step in steps if step.fraction == fraction)


def _judged_rows(steps: list[Figures]) -> list[Row]:
    """The issue's three latency targets, on the 1 MP steps."""
    usual, double = _at(steps, 0.7), _at(steps, 2.0)
    refusals_ok = (
        double.refusal_p99 is not None
        and double.refusal_p99 <= REFUSAL_TARGET_MS
        and double.errors == 0
    )
    return [
        Row(
            figure="service 1 MP at 70 % of saturation: p99 of accepted",
            value=usual.p99,
            unit="ms",
            extra={
                "p50 ms": usual.p50 or 0.0,
                "offered/s": usual.offered or 0.0,
                "refused": usual.refused,
                "% unserved": usual.unserved * 100,
                "other jobs cores": usual.other,
            },
            target="<= 100 ms, <= 1 % unserved",
            verdict=_verdict(
                usual.p99 is not None and usual.p99 <= LATENCY_TARGET_MS and usual.unserved <= 0.01
            ),
        ),
        Row(
            figure="service 1 MP at 2x saturation: p99 of accepted",
            value=double.p99,
            unit="ms",
            extra={
                "accepted/s": double.throughput,
                "refused": double.refused,
                "other jobs cores": double.other,
            },
            target="<= 100 ms",
            verdict=_verdict(double.p99 is not None and double.p99 <= LATENCY_TARGET_MS),
        ),
        Row(
            figure="service 1 MP at 2x saturation: p99 of refusals (503/429)",
            value=double.refusal_p99,
            unit="ms",
            extra={"refused": double.refused, "errors": double.errors},
            target="<= 50 ms, no errors",
            verdict=_verdict(refusals_ok),
        ),
        Row(
            figure="service 1 MP at 2x saturation: accepted/s over saturation (goodput kept)",
            value=double.throughput,
            unit="req/s",
            baseline=steps[0].throughput,
            ratio=double.throughput / steps[0].throughput,
        ),
    ]


def _saturation_row(label: str, steps: list[Figures], hma: float, judged: bool) -> Row:
    saturated = steps[0]
    ratio = saturated.throughput / hma
    return Row(
        figure=f"service {label} saturation ({WORKERS} workers, HTTP) / HMA path on 1 core",
        value=saturated.throughput,
        unit="req/s",
        baseline=hma,
        ratio=ratio,
        extra={"p50 ms": saturated.p50 or 0.0, "p99 ms": saturated.p99 or 0.0},
        target=f">= {THROUGHPUT_TARGET:g} (HMA ideal on {WORKERS} cores)" if judged else INFO,
        verdict=_verdict(ratio >= THROUGHPUT_TARGET) if judged else INFO,
    )


def _hma_row(label: str, files: int, pdq_rows: int, baseline: Baseline) -> Row:
    return Row(
        figure=f"HMA path, {files} x {label}: md5 + PdqSignal + PDQIndex ({pdq_rows:,} PDQ), "
        "1 core",
        value=baseline.rate,
        unit="files/s",
        extra={"matched": baseline.matched},
        target="baseline",
        samples=baseline.seconds,
    )


def _correct_row(sweeps: dict[str, list[Figures]], planted: int) -> Row:
    steps = [step for steps in sweeps.values() for step in steps]
    wrong = sum(step.wrong for step in steps)
    matched = sum(step.accepted for step in steps)
    return Row(
        figure=f"service answers: every 200 has the expected outcome ({planted} files planted)",
        value=float(wrong),
        unit="wrong outcomes",
        extra={"answers": matched},
        target="0",
        verdict=_verdict(wrong == 0),
    )


def _generator_row(steps: list[Figures]) -> Row:
    """How much the generator and other jobs took from the server's cores."""
    return Row(
        figure="service load generator (on the server's cores): max CPU share, send lag p99, "
        "other jobs",
        value=max(step.generator for step in steps) * 100,
        unit="% of a core",
        extra={
            "lag p99 ms": max(step.lag_p99 for step in steps),
            "other jobs cores": max(step.other for step in steps),
        },
    )


def service_rows(corpora: list[Corpus], scale: Scale, say: Say) -> list[Row]:
    plan = PLANS[scale.name]
    one = next(corpus for corpus in corpora if corpus.label == "1 MP")
    with tempfile.TemporaryDirectory(prefix="hashguard-bench-serve-") as tmp:
        home = Path(tmp)
        bank = make_bank(one.files, plan.bank_rows, home)
        hma = {}
        for corpus in corpora:
            say(f"service: HMA baseline in process, {corpus.label}")
            hma[corpus.label] = hma_baseline(corpus.files, bank, REPEATS)
        token = _setup(home, bank)
        sweeps: dict[str, list[Figures]] = {}
        with running_server(home, token) as server:
            say(
                f"service: hashguard serve, {WORKERS} workers, {len(bank.pdq) + len(bank.md5):,} "
                f"bank rows; the load generator shares the {nproc()} cores with it"
            )
            for corpus in corpora:
                planted = bank.planted if corpus is one else frozenset()

                def expect(body: int, planted: frozenset[int] = planted) -> str:
                    return "matched" if body in planted else "no_match"

                sweeps[corpus.label] = sweep(server, corpus, expect, plan, say)
    everything = [step for steps in sweeps.values() for step in steps]
    # Piped stderr would get 80 columns, too few for the step table.
    wide = Console(stderr=True, width=None if sys.stderr.isatty() else 190)
    wide.print(step_table(everything, "service steps (the generator shares the server's cores)"))
    rows = []
    for corpus in corpora:
        baseline, steps = hma[corpus.label], sweeps[corpus.label]
        rows.append(_hma_row(corpus.label, len(corpus.files), len(bank.pdq), baseline))
        rows.append(_saturation_row(corpus.label, steps, baseline.rate, judged=corpus is one))
        rows += [_step_row(step) for step in steps]
        if corpus is one:
            rows += _judged_rows(steps)
    rows.append(_correct_row(sweeps, len(bank.planted)))
    rows.append(_generator_row(everything))
    return rows
