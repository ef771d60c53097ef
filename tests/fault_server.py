"""A real hashguard server, as a process, whose upload pipeline fails at one named step.

``python -m tests.fault_server PORT STEP MODE NONCE``: the settings come from HASHGUARD_*
as for ``hashguard serve``; at ``STEP`` (one of ``hashguard.scan.pipeline.STEPS``)
the first upload that reaches it makes the process exit at once (``MODE`` ``exit``:
``os._exit``, as a kill would, no clean-up) or raises (``raise``). The fault goes in
through the pipeline's ``checkpoint`` seam, nothing else is changed. Every answer
carries ``X-Fault-Nonce: NONCE``: the test knows it talks to this process, not to
another test's server that took the port first (the process then could not bind it).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Awaitable, Callable

import uvicorn
from fastapi import Request, Response

from hashguard.settings import Settings
from hashguard.web.app import create_app


class InjectedFault(RuntimeError):
    pass


def checkpoint_for(step: str, mode: str) -> Callable[[str], None]:
    def checkpoint(reached: str) -> None:
        if reached != step:
            return
        if mode == "exit":
            os._exit(17)
        raise InjectedFault(f"injected fault at {step}")

    return checkpoint


def main() -> None:
    port, step, mode, nonce = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    app = create_app(Settings())
    fault = checkpoint_for(step, mode)

    @app.middleware("http")
    async def inject(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        svc = request.app.state.services
        if svc.pipeline.checkpoint is not fault:
            svc.pipeline = dataclasses.replace(svc.pipeline, checkpoint=fault)
        response = await call_next(request)
        response.headers["X-Fault-Nonce"] = nonce
        return response

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
