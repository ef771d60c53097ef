"""A loopback load generator for ``POST /v1/scan``: open loop at a fixed rate, or closed loop.

Open loop: request *i* is due at a time drawn in advance (Poisson arrivals from a fixed
seed) and is sent then, whatever happened to earlier requests, so a slow server meets
ever more requests instead of slowing the generator down. Latency runs from the due
time to the last byte of the answer, so a generator that falls behind counts against
the measurement, never in its favour (no coordinated omission); how late it sent each
request is recorded as ``lag`` to show whether it kept up.

Closed loop: ``concurrency`` clients each send their next request as soon as the last
one is answered; its rate of accepted answers is the server's saturation throughput.

The generator runs in the benchmark's own process, on the same cores as the server, so
every CPU millisecond it spends is taken from the server. It therefore speaks just
enough HTTP/1.1 itself (one request at a time per keep-alive connection, a
``Content-Length`` body, a ``Content-Length`` answer, as uvicorn sends) on one uvloop
event loop: about 0.15 ms of CPU per request, where httpx's AsyncClient measured
1.0-2.2 ms and, at twice the saturation rate, fell seconds behind its schedule. Its CPU
time is measured per step and reported.

``figures`` sums a step up: accepted throughput, latency quantiles of accepted answers,
refusals and their latency, and CPU per request from ``Cpu`` snapshots of the server's
processes and the whole machine taken around the step.
"""

from __future__ import annotations

import asyncio
import gc
import math
import random
import re
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field

import uvloop
from rich.table import Table

_OUTCOME = re.compile(rb'"outcome"\s*:\s*"([a-z_]+)"')
_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)
_CLOSE = re.compile(rb"\r\nconnection:\s*close", re.IGNORECASE)
#: Every request's own limit; a request still unanswered then counts as an error.
REQUEST_TIMEOUT = 60.0
#: A pooled connection idle this long is dropped (uvicorn closes them after 5 s).
IDLE_SECONDS = 2.0
#: The status recorded when no answer came (connection reset, timeout, bad answer).
ERROR = 0


@dataclass(frozen=True, kw_only=True, slots=True)
class Sent:
    """One request and its answer."""

    #: Index of the body sent (into the bodies given to the generator).
    body: int
    #: Seconds after the step's start at which it was due (closed loop: when it was sent).
    due: float
    #: How late the generator sent it, in seconds.
    lag: float
    #: From ``due`` to the whole answer, in seconds.
    latency: float
    #: HTTP status, or ``ERROR`` (0) when no answer came.
    status: int
    #: ``outcome`` of a 200 answer (``matched``, ``no_match`` ...); empty otherwise.
    outcome: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Load:
    """What one step sent and got back."""

    #: Requests per second offered; None for a closed loop.
    offered: float | None
    concurrency: int | None
    #: From the step's start until its last answer arrived.
    seconds: float
    sent: tuple[Sent, ...]
    #: CPU seconds the generator's process spent during the step.
    generator_cpu: float
    #: Connections the generator opened during the step.
    connections: int


@dataclass(frozen=True, kw_only=True, slots=True)
class Target:
    host: str
    port: int
    token: str
    bodies: Sequence[bytes]
    #: the request (``POST /v1/scan`` of raw bytes unless said otherwise)
    method: str = "POST"
    path: str = "/v1/scan"
    content_type: str = "application/octet-stream"


def poisson_schedule(rate: float, seconds: float, seed: int) -> list[float]:
    """Due times in [0, seconds) of a Poisson process of ``rate`` per second."""
    rng = random.Random(seed)
    due, times = 0.0, list[float]()
    while True:
        due += rng.expovariate(rate)
        if due >= seconds:
            return times
        times.append(due)


@dataclass(kw_only=True, slots=True)
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    used: float = 0.0


@dataclass(kw_only=True, slots=True)
class _Client:
    """Keep-alive connections to one server; a new one whenever none is idle."""

    target: Target
    heads: list[bytes] = field(default_factory=list)
    idle: list[_Connection] = field(default_factory=list)
    opened: int = 0

    def __post_init__(self) -> None:
        target = self.target
        common = (
            f"{target.method} {target.path} HTTP/1.1\r\nHost: {target.host}:{target.port}\r\n"
            f"Authorization: Bearer {target.token}\r\n"
            f"Content-Type: {target.content_type}\r\n"
        )
        self.heads = [
            f"{common}Content-Length: {len(body)}\r\n\r\n".encode() for body in self.target.bodies
        ]

    async def _connection(self) -> _Connection:
        now = time.perf_counter()
        while self.idle:
            connection = self.idle.pop()
            if now - connection.used < IDLE_SECONDS and not connection.reader.at_eof():
                return connection
            connection.writer.close()
        reader, writer = await asyncio.open_connection(self.target.host, self.target.port)
        self.opened += 1
        return _Connection(reader=reader, writer=writer)

    async def post(self, body: int) -> tuple[int, bytes]:
        """(status, answer body) of one upload; (ERROR, b"") when no whole answer came."""
        connection = await self._connection()
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                # Not drained first: an early refusal is read while the body is still going.
                connection.writer.write(self.heads[body])
                connection.writer.write(self.target.bodies[body])
                head = await connection.reader.readuntil(b"\r\n\r\n")
                length = _LENGTH.search(head)
                payload = await connection.reader.readexactly(int(length.group(1)) if length else 0)
                status = int(head[9:12])
        except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError):
            connection.writer.close()
            return ERROR, b""
        if length is None or _CLOSE.search(head):
            connection.writer.close()
        else:
            connection.used = time.perf_counter()
            self.idle.append(connection)
        return status, payload

    async def warm(self, count: int) -> None:
        """Open ``count`` connections before the clock starts."""
        fresh = []
        for _ in range(count):
            reader, writer = await asyncio.open_connection(self.target.host, self.target.port)
            fresh.append(_Connection(reader=reader, writer=writer, used=time.perf_counter()))
        self.idle += fresh
        self.opened = 0

    def close(self) -> None:
        for connection in self.idle:
            connection.writer.close()
        self.idle.clear()


async def _send(client: _Client, body: int, due: float, t0: float) -> Sent:
    sent_at = time.perf_counter()
    status, payload = await client.post(body)
    done = time.perf_counter()
    found = _OUTCOME.search(payload) if status == 200 else None
    return Sent(
        body=body,
        due=due,
        lag=max(0.0, sent_at - t0 - due),
        latency=done - t0 - due,
        status=status,
        outcome=found.group(1).decode() if found else "",
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class _Timed:
    sent: list[Sent]
    seconds: float
    cpu: float
    connections: int


async def _open_loop(target: Target, schedule: list[float], first: int) -> _Timed:
    client = _Client(target=target)
    await client.warm(16)
    loop = asyncio.get_running_loop()
    cpu, t0 = time.process_time(), time.perf_counter()
    tasks = []
    for number, due in enumerate(schedule):
        delay = t0 + due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        body = (first + number) % len(target.bodies)
        tasks.append(loop.create_task(_send(client, body, due, t0)))
    sent = list(await asyncio.gather(*tasks))
    timed = _Timed(
        sent=sent,
        seconds=time.perf_counter() - t0,
        cpu=time.process_time() - cpu,
        connections=client.opened,
    )
    client.close()
    return timed


async def _closed_loop(target: Target, concurrency: int, seconds: float) -> _Timed:
    client = _Client(target=target)
    await client.warm(concurrency)
    cpu, t0 = time.process_time(), time.perf_counter()
    counter = iter(range(1 << 62))

    async def one_client() -> list[Sent]:
        answers = []
        while (now := time.perf_counter() - t0) < seconds:
            body = next(counter) % len(target.bodies)
            answers.append(await _send(client, body, now, t0))
        return answers

    per_client = await asyncio.gather(*(one_client() for _ in range(concurrency)))
    sent = sorted((one for answers in per_client for one in answers), key=lambda s: s.due)
    timed = _Timed(
        sent=sent,
        seconds=time.perf_counter() - t0,
        cpu=time.process_time() - cpu,
        connections=client.opened,
    )
    client.close()
    return timed


def _load(timed: _Timed, offered: float | None, concurrency: int | None) -> Load:
    return Load(
        offered=offered,
        concurrency=concurrency,
        seconds=timed.seconds,
        sent=tuple(timed.sent),
        generator_cpu=timed.cpu,
        connections=timed.connections,
    )


def _run(step: Coroutine[None, None, _Timed]) -> _Timed:
    """Run one step on a fresh uvloop, without the cyclic GC: a collection of this
    process's heap would pause the generator for tens of ms and delay its requests."""
    gc.collect()
    gc.disable()
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(step)
    finally:
        gc.enable()


def open_loop(target: Target, rate: float, seconds: float, *, seed: int, first: int = 0) -> Load:
    """Offer ``rate`` requests/s for ``seconds`` (Poisson arrivals); wait for every answer."""
    schedule = poisson_schedule(rate, seconds, seed)
    return _load(_run(_open_loop(target, schedule, first)), rate, None)


def closed_loop(target: Target, concurrency: int, seconds: float) -> Load:
    """``concurrency`` clients sending back to back for ``seconds``."""
    return _load(_run(_closed_loop(target, concurrency, seconds)), None, concurrency)


@dataclass(frozen=True, kw_only=True, slots=True)
class Cpu:
    """CPU seconds so far: the server's own process, its hashing processes, the machine."""

    server: float
    workers: float
    #: Busy CPU seconds of every core of the machine (``/proc/stat``), whoever used them.
    machine: float
    #: The server's descendants now (the forkserver and the hashing workers).
    children: frozenset[int]


# -- one step's figures ------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Figures:
    """One step: what was offered, what was accepted, how fast, and at what CPU cost."""

    corpus: str
    #: Of the saturation rate; None for the closed loop that measures it.
    fraction: float | None
    #: Clients of the closed loop; None for an open-loop step.
    clients: int | None
    offered: float | None
    sent: int
    accepted: int
    #: 503 and 429 answers.
    refused: int
    #: No answer, or a status other than 200, 429 and 503.
    errors: int
    #: 200 answers whose outcome was not the expected one.
    wrong: int
    #: Accepted answers per second.
    throughput: float
    p50: float | None
    p95: float | None
    p99: float | None
    #: The slowest accepted answer: a stall of the whole server shows here.
    slowest: float | None
    refusal_p99: float | None
    #: Share of requests not served within the latency target (refused, failed or slow).
    unserved: float
    lag_p99: float
    #: Generator CPU seconds per second of the step (1.0 = one core).
    generator: float
    #: CPU ms per accepted request: the server's own process, and its hashing processes.
    server_ms: float | None
    workers_ms: float | None
    #: Cores busy with anything but the server and the generator (other jobs on the machine).
    other: float
    #: Hashing workers replaced during the step (pebble recycles one after MAX_TASKS files).
    recycled: int

    @property
    def quantiles(self) -> str:
        """p50/p95/p99 of the accepted answers, in ms."""
        return "/".join(number_or_dash(v) for v in (self.p50, self.p95, self.p99))

    @property
    def name(self) -> str:
        if self.fraction is None:
            return f"{self.corpus} closed loop x{self.clients}"
        return f"{self.corpus} {self.fraction:.0%}"


def _ms(seconds: list[float], quantile: float) -> float | None:
    """Nearest-rank quantile, in ms."""
    if not seconds:
        return None
    ordered = sorted(seconds)
    return ordered[max(0, math.ceil(quantile * len(ordered)) - 1)] * 1e3


def figures(
    corpus: str,
    fraction: float | None,
    load: Load,
    cpu: tuple[Cpu, Cpu],
    expect: Callable[[int], str],
    target_ms: float,
    *,
    ok: int = 200,
) -> Figures:
    """``ok``: the status of an accepted answer (202 for a queued notice)."""
    accepted = [s for s in load.sent if s.status == ok]
    refused = [s for s in load.sent if s.status in (429, 503)]
    errors = len(load.sent) - len(accepted) - len(refused)
    slow = sum(s.latency * 1e3 > target_ms for s in accepted)
    before, after = cpu
    per = 1e3 / len(accepted) if accepted else None
    ours = after.server - before.server + after.workers - before.workers + load.generator_cpu
    return Figures(
        corpus=corpus,
        fraction=fraction,
        clients=load.concurrency,
        offered=load.offered,
        sent=len(load.sent),
        accepted=len(accepted),
        refused=len(refused),
        errors=errors,
        wrong=sum(s.outcome != expect(s.body) for s in accepted),
        throughput=len(accepted) / load.seconds,
        p50=_ms([s.latency for s in accepted], 0.50),
        p95=_ms([s.latency for s in accepted], 0.95),
        p99=_ms([s.latency for s in accepted], 0.99),
        slowest=_ms([s.latency for s in accepted], 1.0),
        refusal_p99=_ms([s.latency for s in refused], 0.99),
        unserved=(len(load.sent) - len(accepted) + slow) / max(1, len(load.sent)),
        lag_p99=_ms([s.lag for s in load.sent], 0.99) or 0.0,
        generator=load.generator_cpu / load.seconds,
        server_ms=(after.server - before.server) * per if per else None,
        workers_ms=(after.workers - before.workers) * per if per else None,
        other=max(0.0, after.machine - before.machine - ours) / load.seconds,
        recycled=len(after.children - before.children),
    )


def number_or_dash(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def step_table(steps: list[Figures], title: str) -> Table:
    table = Table(
        "step",
        "offered/s",
        "accepted/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "refused",
        "refusal p99 ms",
        "errors",
        "lag p99 ms",
        "generator CPU",
        "server ms/req",
        "workers ms/req",
        "recycled",
        "other CPU",
        title=title,
    )
    for step in steps:
        table.add_row(
            step.name,
            number_or_dash(step.offered),
            number_or_dash(step.throughput),
            number_or_dash(step.p50),
            number_or_dash(step.p95),
            number_or_dash(step.p99),
            number_or_dash(step.slowest),
            f"{step.refused}/{step.sent}",
            number_or_dash(step.refusal_p99),
            str(step.errors),
            number_or_dash(step.lag_p99),
            f"{step.generator:.0%}",
            number_or_dash(step.server_ms, 2),
            number_or_dash(step.workers_ms, 2),
            str(step.recycled),
            f"{step.other:.2f} cores",
        )
    return table
