"""Walking scan roots: every file once, symlinks followed, loops and unreadable folders reported."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from hashguard.domain.scans import Outcome
from hashguard.safefs import inside, open_dir_nofollow


@dataclass(frozen=True, kw_only=True, slots=True)
class WalkItem:
    """A path to hash, or (with ``problem``) a path the walk itself settled."""

    path: str
    problem: Outcome | None = None
    reason: str | None = None


def _names(path: str, real: str | None) -> list[str]:
    """The folder's entries. Within the scan roots the folder is opened at its real path
    with no symlink followed, so one swapped in after the check is not listed."""
    if real is None:
        return os.listdir(path)
    fd = open_dir_nofollow(real)
    try:
        return os.listdir(fd)
    finally:
        os.close(fd)


def walk(roots: list[str], *, confine: Sequence[str] | None = None) -> Iterator[WalkItem]:
    """Yield the files under ``roots`` in a stable (sorted) order.

    Symlinks are followed, like a scanner reading a web root must; a directory
    reached a second time (a symlink loop, or two links to one folder) is reported
    once as ``unsupported`` and not entered again, so the walk always ends. With
    ``confine`` (real paths), a path that leads outside those folders (through a
    symlink) is reported as ``unsupported`` and neither read nor entered; a folder is
    listed through a descriptor opened without following symlinks, and the hashing
    kernel opens files the same way (``HashOptions.confine``), so a symlink swapped in
    after this check is never followed.
    """
    visited: set[tuple[int, int]] = set()
    # An explicit stack, not recursion: hostile trees can nest deeper than Python's stack.
    stack = list(reversed(roots))
    while stack:
        path = stack.pop()
        real = None
        if confine is not None:
            try:
                real = os.path.realpath(path)
            except OSError as exc:  # a symlink on the way changed while it was resolved
                yield WalkItem(
                    path=path,
                    problem=Outcome.ERROR,
                    reason=f"changed while being scanned: {exc.strerror}; not read",
                )
                continue
            if not inside(real, confine):
                yield WalkItem(
                    path=path,
                    problem=Outcome.UNSUPPORTED,
                    reason="leads outside the scan roots (through a symlink); not read",
                )
                continue
        try:
            # within the roots: what the real path is now, not what a new symlink points to
            info = os.stat(path) if real is None else os.stat(real, follow_symlinks=False)
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
            names = sorted(_names(path, real))
        except OSError as exc:  # SymlinkInPath: replaced by a symlink after the check
            yield WalkItem(
                path=path, problem=Outcome.ERROR, reason=f"cannot list directory: {exc.strerror}"
            )
            continue
        stack.extend(os.path.join(path, name) for name in reversed(names))
