"""Text that a store can keep: the one rule every way in (API, imports, exchanges) applies.

PostgreSQL's ``text`` cannot hold a NUL character, and a lone surrogate (``"\\ud800"``,
which JSON's ``\\u`` escapes can carry) is not Unicode at all: no store, log or terminal
can encode it. Such text is refused where it enters, never found out by a later write.
"""

from __future__ import annotations

NUL = "contains a NUL character"
SURROGATE = "contains a lone surrogate (not valid Unicode)"


def unstorable(text: str) -> str | None:
    """Why ``text`` cannot be stored, or None when it can."""
    if "\x00" in text:
        return NUL
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return SURROGATE
    return None


def printable(text: str) -> str:
    """``text`` safe to put in a message (NUL and lone surrogates escaped)."""
    if unstorable(text) is None:
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
