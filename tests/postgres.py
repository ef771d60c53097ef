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


class Cluster:
    """A throwaway cluster in a fresh temp dir on a free loopback port, which a test may
    stop (as a crash would: ``-m immediate``) and start again on the same port."""

    def __init__(self, bindir: str) -> None:
        # Not pytest's tmp_path: its 0700 folders keep the postgres user out.
        self.root = tempfile.mkdtemp(prefix="hashguard-pg-")
        self._bindir = bindir
        self._as_root = os.geteuid() == 0
        if self._as_root:
            shutil.chown(self.root, "postgres", "postgres")
        self.data, self.port = f"{self.root}/data", _free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self._run(
            "initdb", "-D", self.data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
            "--no-locale", "--no-sync",
        )  # fmt: skip

    def _run(self, tool: str, *args: str, check: bool = True) -> None:
        command = [f"{self._bindir}/{tool}", *args]
        if self._as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=check, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def start(self) -> None:
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            "pg_ctl", "-D", self.data, "-l", f"{self.root}/pg.log", "-w", "-t", "30",
            "-o", options, "start",
        )  # fmt: skip

    def stop(self) -> None:
        self._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop", check=False)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def temporary_cluster(bindir: str) -> Iterator[str]:
    """Start a cluster in a fresh temp dir on a free loopback port; yield its URL."""
    cluster = Cluster(bindir)
    try:
        cluster.start()
        yield cluster.url
    finally:
        cluster.remove()
