"""A throwaway PostgreSQL cluster from the machine's own binaries, for the test suite."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager


def find_bin() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return os.path.dirname(found[-1]) if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def temporary_cluster(bindir: str) -> Iterator[str]:
    """Start a cluster in a fresh temp dir on a free loopback port; yield its URL."""
    # Not pytest's tmp_path: its 0700 folders keep the postgres user out.
    root = tempfile.mkdtemp(prefix="hashguard-pg-")
    as_root = os.geteuid() == 0

    def run(*command: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *command] if as_root else list(command)

    if as_root:
        shutil.chown(root, "postgres", "postgres")
    data, port = f"{root}/data", _free_port()
    options = (
        f"-c listen_addresses=127.0.0.1 -p {port} -k {root} "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    )
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    subprocess.run(
        run(
            f"{bindir}/initdb",
            "-D",
            data,
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        ),
        check=True,
        **quiet,
    )
    subprocess.run(
        run(
            f"{bindir}/pg_ctl",
            "-D",
            data,
            "-l",
            f"{root}/pg.log",
            "-w",
            "-t",
            "30",
            "-o",
            options,
            "start",
        ),
        check=True,
        **quiet,
    )
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            run(f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"),
            check=False,
            **quiet,
        )
        shutil.rmtree(root, ignore_errors=True)
