"""The ``hashguard`` command line; one module per command group."""

from __future__ import annotations

from hashguard.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
