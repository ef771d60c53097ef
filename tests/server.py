"""A real hashguard server on a loopback port, in a thread of the test process."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

import httpx
import uvicorn
from fastapi import FastAPI

from hashguard.settings import Settings
from hashguard.web.app import create_app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_server(
    settings: Settings,
    *,
    ready: bool = True,
    background: bool = True,
    app: FastAPI | None = None,
    clock: Callable[[], datetime] | None = None,
) -> Iterator[str]:
    """Serve ``settings`` (or ``app``, made from them) on 127.0.0.1 until the block ends;
    yields the base URL.

    With ``ready``, waits until /readyz answers 200 (the match index is loaded); without
    ``background``, the server runs no background jobs and no outbox dispatcher (as
    ``serve --no-background``: workers do). ``clock``: the server's time for tenants'
    quotas and rate limits.
    """
    port = free_port()
    config = uvicorn.Config(
        app or create_app(settings, background=background, clock=clock),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"hashguard-server-{port}", daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    path = "/readyz" if ready else "/healthz"
    while True:
        try:
            if httpx.get(base + path, timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise RuntimeError(f"the test server did not become ready on {base}")
        time.sleep(0.05)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=30)
