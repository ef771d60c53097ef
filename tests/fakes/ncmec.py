"""The loopback fake of NCMEC's hash-sharing API v2 (``hashguard.demo.hashsharing``, which
the review demo runs too) and the tests' default data set of made-up entries."""

from __future__ import annotations

import base64
import random
from datetime import datetime, timedelta

from hashguard.demo.hashsharing import (
    DEFAULT_REASONS,
    NAMESPACE,
    Failure,
    FakeEntry,
    FakeNcmec,
    Recorded,
)

__all__ = [
    "DEFAULT_REASONS",
    "NAMESPACE",
    "Failure",
    "FakeEntry",
    "FakeNcmec",
    "Recorded",
    "sample_entries",
]


# -- the default data set ---------------------------------------------------------------


def _hex(rng: random.Random, digits: int) -> str:
    return f"{rng.getrandbits(4 * digits):0{digits}x}"


def _made_up(rng: random.Random) -> dict[str, str]:
    """An image's fingerprints: random hex, and random bytes as stand-in PhotoDNA."""
    return {
        "md5": _hex(rng, 32),
        "sha1": _hex(rng, 40).upper(),
        "pdq": _hex(rng, 64),
        "pdna": base64.b64encode(rng.randbytes(144)).decode(),
    }


def sample_entries(now: datetime, *, seed: int = 2258) -> list[FakeEntry]:
    """Benign made-up entries over the 40 days before ``now``: images with every
    fingerprint type, videos with large fingerprints, deletions (documented: id only;
    and one carrying fingerprints), and malformed entries."""
    rng = random.Random(seed)
    day = timedelta(days=1)
    entries: list[FakeEntry] = []
    # seven images in one week (several pages), three more spread out
    offsets = [30.1, 30.5, 31.2, 32.0, 33.3, 34.4, 35.6, 20.0, 12.5, 3.0]
    for number, offset in enumerate(offsets, start=1):
        prints = _made_up(rng)
        if number % 3 == 0:
            prints["netclean"] = _hex(rng, 48)
        entries.append(
            FakeEntry(
                member_id=42,
                entry_id=f"img-{number:02d}",
                timestamp=now - offset * day,
                classification=("A1", "A2", "B1", "B2")[number % 4],
                fingerprints=prints,
            )
        )
    for number, offset in enumerate((31.7, 18.0, 2.5), start=1):
        entries.append(
            FakeEntry(
                member_id=43,
                entry_id=f"vid-{number:02d}",
                media="video",
                timestamp=now - offset * day,
                classification=None if number == 2 else "A1",
                fingerprints={"md5": _hex(rng, 32), "sha1": _hex(rng, 40)},
                large=("tmk-pdqf", "videntifier"),
            )
        )
    entries += [
        FakeEntry(member_id=42, entry_id="img-gone", timestamp=now - 33.9 * day, deleted=True),
        FakeEntry(
            member_id=43,
            entry_id="vid-gone",
            media="video",
            timestamp=now - 10 * day,
            deleted=True,
        ),
        # not in NCMEC's documented examples; the adapter accepts it all the same
        FakeEntry(
            member_id=44,
            entry_id="img-withdrawn",
            timestamp=now - 5 * day,
            deleted=True,
            fingerprints={"md5": _hex(rng, 32), "sha1": _hex(rng, 40)},
        ),
        # malformed: a bad md5 beside a good sha1; no id; no member id; blank PDQ
        FakeEntry(
            member_id=42,
            entry_id="img-badhex",
            timestamp=now - 32.5 * day,
            fingerprints={"md5": "zz" * 16, "sha1": _hex(rng, 40)},
        ),
        FakeEntry(
            member_id=42, entry_id=None, timestamp=now - 15 * day, fingerprints=_made_up(rng)
        ),
        FakeEntry(
            member_id=None,
            entry_id="img-nomember",
            timestamp=now - 14 * day,
            fingerprints=_made_up(rng),
        ),
        FakeEntry(
            member_id=45,
            entry_id="img-blankpdq",
            timestamp=now - 7 * day,
            fingerprints={"pdq": "0" * 64, "pdna": "AAAA"},
        ),
        # too fresh: stamped inside the adapter's settling time
        FakeEntry(
            member_id=42,
            entry_id="img-fresh",
            timestamp=now - timedelta(minutes=1),
            fingerprints=_made_up(rng),
        ),
    ]
    return entries
