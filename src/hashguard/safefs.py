"""Opening files and folders by path without following a symlink swapped in on the way.

A path checked first and opened later can change in between: a file or a folder
replaced by a symlink to somewhere else. These helpers open an absolute path one
component at a time from ``/`` with ``O_NOFOLLOW`` (``openat`` on the parent's
descriptor), so what they open is exactly what the path names at that moment, never
through a symlink; ``open_resolved`` resolves a path's symlinks once (``realpath``),
checks where it leads, then opens that real path that way. Linux and other POSIX
systems with ``dir_fd`` support.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

Path = str | bytes | os.PathLike[str] | os.PathLike[bytes]


class SymlinkInPath(OSError):
    """A component of the path is a symlink (or is no longer a folder): not followed."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.ELOOP, message)


class OutsideRoots(Exception):
    """The path leads outside the folders it is confined to."""


def inside(real: str, folders: Sequence[str]) -> bool:
    """Whether the real path ``real`` is one of ``folders`` (real paths) or under one."""
    return any(
        real == folder or real.startswith(folder.rstrip(os.sep) + os.sep) for folder in folders
    )


def _parts(path: Path) -> list[bytes]:
    raw = os.fsencode(path)
    if not raw.startswith(b"/"):
        raise ValueError(f"not an absolute path: {os.fsdecode(raw)!r}")
    parts = [p for p in raw.split(b"/") if p not in (b"", b".")]
    if b".." in parts:
        raise ValueError(f"'..' in a path to open without symlinks: {os.fsdecode(raw)!r}")
    return parts


def _step(dir_fd: int, name: bytes) -> int:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            try:
                info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except OSError:
                raise exc from None
            if stat.S_ISLNK(info.st_mode):
                raise SymlinkInPath(
                    f"{os.fsdecode(name)!r} on the way is a symlink; not followed"
                ) from None
        raise


def open_dir_nofollow(path: Path) -> int:
    """A descriptor of the folder at the absolute ``path``, opened one component at a
    time from ``/`` with ``O_NOFOLLOW``. Raises ``SymlinkInPath`` when a component is a
    symlink, and ``OSError`` as ``open`` does (the caller closes the descriptor)."""
    fd = os.open(b"/", _DIR_FLAGS)
    try:
        for part in _parts(path):
            following = _step(fd, part)
            os.close(fd)
            fd = following
    except BaseException:
        os.close(fd)
        raise
    return fd


def split_name(path: Path) -> tuple[bytes, bytes]:
    """``path``'s folder and its last component (a name, never empty, ``.`` or ``..``)."""
    raw = os.fsencode(path)
    parent, name = os.path.split(raw)
    if not name or name in (b".", b".."):
        raise ValueError(f"not a file path: {os.fsdecode(raw)!r}")
    return parent or b"/", name


def open_nofollow(path: Path, flags: int = os.O_RDONLY, mode: int = 0o600) -> int:
    """Open the absolute ``path`` with no symlink followed anywhere on the way, the last
    component included (``SymlinkInPath`` / ``OSError`` with ``ELOOP`` otherwise)."""
    parent, name = split_name(path)
    dir_fd = open_dir_nofollow(parent)
    try:
        return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # with O_NOFOLLOW: the last component is a symlink
            raise SymlinkInPath(f"{os.fsdecode(name)!r} is a symlink; not followed") from None
        raise
    finally:
        os.close(dir_fd)


def open_resolved(
    path: Path, flags: int = os.O_RDONLY, *, confine: Sequence[str] | None = None
) -> int:
    """Open what ``path`` leads to now: its symlinks resolved once (``realpath``), the
    result refused (``OutsideRoots``) outside ``confine`` (real folder paths) when given,
    then opened with ``open_nofollow``, so a symlink swapped in after the check is never
    followed (``SymlinkInPath``)."""
    written = os.fsdecode(path)
    if os.path.isabs(written) and (confine is None or inside(written, confine)):
        # The common case costs no realpath: a path with no symlink on it is its own
        # real path, and opening it that way proves there is none.
        try:
            return open_nofollow(written, flags)
        except (SymlinkInPath, ValueError):
            pass  # a symlink (or '..') on the way: resolve it, check, open the result
    real = os.path.realpath(written)
    if confine is not None and not inside(real, confine):
        raise OutsideRoots(f"{real} is outside the scan roots")
    return open_nofollow(real, flags)


def same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
