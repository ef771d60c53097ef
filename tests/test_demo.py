"""``hashguard demo`` finds every copy of a known image and no distractor, offline."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli import hashguard


@pytest.mark.usefixtures("home")
def test_demo_finds_edited_copies_and_no_distractors(tmp_path: Path) -> None:
    done = hashguard("demo", "--dir", str(tmp_path / "demo"))
    assert "24/24 copies of known images found" in done.stderr
    assert "0 distractors matched" in done.stderr
    assert (tmp_path / "demo" / "lists" / "known.csv").is_file()
