"""Walking scan roots: every file once, symlinks followed, loops and unreadable folders reported."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from hashguard.domain.scans import Outcome


@dataclass(frozen=True, kw_only=True, slots=True)
class WalkItem:
    """A path to hash, or (with ``problem``) a path the walk itself settled."""

    path: str
    problem: Outcome | None = None
    reason: str | None = None


def _inside(path: str, folders: Sequence[str]) -> bool:
    real = os.path.realpath(path)
    return any(
        real == folder or real.startswith(folder.rstrip(os.sep) + os.sep) for folder in folders
    )


def walk(roots: list[str], *, confine: Sequence[str] | None = None) -> Iterator[WalkItem]:
    """Yield the files under ``roots`` in a stable (sorted) order.

    Symlinks are followed, like a scanner reading a web root must; a directory
    reached a second time (a symlink loop, or two links to one folder) is reported
    once as ``unsupported`` and not entered again, so the walk always ends. With
    ``confine`` (real paths), a path that leads outside those folders (through a
    symlink) is reported as ``unsupported`` and neither read nor entered.
    """
    visited: set[tuple[int, int]] = set()
    # An explicit stack, not recursion: hostile trees can nest deeper than Python's stack.
    stack = list(reversed(roots))
    while stack:
        path = stack.pop()
        if confine is not None and not _inside(path, confine):
            yield WalkItem(
                path=path,
                problem=Outcome.UNSUPPORTED,
                reason="leads outside the scan roots (through a symlink); not read",
            )
            continue
        try:
            info = os.stat(path)
        except OSError:
            # Dangling symlink or vanished file: the hasher reports the precise error.
            yield WalkItem(path=path)
            continue
        if not stat.S_ISDIR(info.st_mode):
            yield WalkItem(path=path)
            continue
        key = (info.st_dev, info.st_ino)
        if key in visited:
            yield WalkItem(
                path=path,
                problem=Outcome.UNSUPPORTED,
                reason="directory already scanned through another path "
                "(symlink loop or duplicate link)",
            )
            continue
        visited.add(key)
        try:
            names = sorted(os.listdir(path))
        except OSError as exc:
            yield WalkItem(
                path=path, problem=Outcome.ERROR, reason=f"cannot list directory: {exc.strerror}"
            )
            continue
        stack.extend(os.path.join(path, name) for name in reversed(names))
