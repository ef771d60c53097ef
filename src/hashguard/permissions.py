"""Private files on disk: the home and what hashguard keeps in it are its user's alone.

The home holds list hashes (the database and the index snapshot), token hashes, the
audit log, the master key and encrypted evidence. Folders hashguard creates there are
0700 and files 0600 whatever the umask; ``permission_problems`` names anything that
group or others may open (the server logs them at start-up, ``hashguard doctor`` lists
them). Modes are checked, not changed: loosening them may have been deliberate.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hashguard.settings import Settings

log = logging.getLogger("hashguard")

DIR_MODE = 0o700
FILE_MODE = 0o600
#: a home with more entries than this is checked only this far (evidence can be many)
MAX_CHECKED = 100_000


def private_dir(path: Path) -> Path:
    """``path`` as a folder, each missing component created 0700 (existing ones kept)."""
    missing = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, DIR_MODE)
        except FileExistsError:  # made meanwhile by another process
            continue
        os.chmod(folder, DIR_MODE)  # exactly 0700, whatever the umask
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty with mode 0600 unless it exists (its folder made private)."""
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
    except FileExistsError:
        return path
    os.close(fd)
    return path


def _problem(path: Path, mode: int, *, folder: bool) -> str | None:
    open_to = mode & 0o077
    if not open_to:
        return None
    who = " and ".join(
        name for name, bits in (("group", 0o070), ("others", 0o007)) if open_to & bits
    )
    wanted = DIR_MODE if folder else FILE_MODE
    kind = "folder" if folder else "file"
    return (
        f"{path}: {kind} mode {stat.S_IMODE(mode):04o} lets {who} in "
        f"(should be {wanted:04o}: chmod {wanted:o} {path})"
    )


def permission_problems(home: Path) -> list[str]:
    """One line for each folder or file in ``home`` (and ``home`` itself) that group or
    others may read, write or enter; empty when all is private or ``home`` is absent.
    Symbolic links are not followed."""
    try:
        top = os.lstat(home)
    except FileNotFoundError:
        return []
    problems: list[str] = []
    if stat.S_ISLNK(top.st_mode):
        top = os.stat(home)  # the home itself may be a link to the real folder
    found = _problem(home, top.st_mode, folder=stat.S_ISDIR(top.st_mode))
    if found:
        problems.append(found)
    if not stat.S_ISDIR(top.st_mode):
        return problems
    checked = 0
    stack = [home]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            problems.append(f"{folder}: cannot be read ({exc.strerror})")
            continue
        for entry in sorted(entries, key=lambda e: e.name):
            checked += 1
            if checked > MAX_CHECKED:
                problems.append(f"{home}: checked only the first {MAX_CHECKED} entries")
                return problems
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:  # removed meanwhile
                continue
            if stat.S_ISLNK(info.st_mode):
                continue
            is_dir = stat.S_ISDIR(info.st_mode)
            found = _problem(Path(entry.path), info.st_mode, folder=is_dir)
            if found:
                problems.append(found)
            if is_dir:
                stack.append(Path(entry.path))
    return problems


def sqlite_file(url: str) -> Path | None:
    """The database file of a ``sqlite:///path`` URL (None for others and in-memory)."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return None
    name = url[len(prefix) :].split("?", 1)[0]
    return Path(name).expanduser() if name and name != ":memory:" else None


def private_paths(settings: Settings) -> list[Path]:
    """The home, and each place hashguard keeps data outside it (checked the same way)."""
    home = settings.home
    places = [home]
    extra: list[Path | None] = [
        settings.evidence_dir,
        settings.quarantine_dir,
        settings.master_key_file,
        sqlite_file(settings.resolved_database_url),
    ]
    for path in extra:
        if path is not None and not path.is_relative_to(home):
            places.append(path)
    return places


def warn_about_permissions(settings: Settings) -> list[str]:
    """Log a warning for each folder or file of the installation that group or others
    may open; returns them."""
    problems = [line for place in private_paths(settings) for line in permission_problems(place)]
    for line in problems:
        log.warning("not private: %s", line)
    return problems
