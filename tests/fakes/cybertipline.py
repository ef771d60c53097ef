"""The loopback fake CyberTipline (``hashguard.demo.cybertipline``, which the review demo
runs too) with NCMEC's XSD as the project's shared reference holds it (not vendored:
services.md §3), beside the checkout, or where ``HG_TEST_NCMEC_XSD`` says."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import xmlschema

from hashguard.demo.cybertipline import FakeCyberTipline as _Fake
from hashguard.demo.cybertipline import FakeReport, load_schema

XSD = Path(
    os.environ.get("HG_TEST_NCMEC_XSD")
    or Path(__file__).resolve().parents[3] / "shared/reference/ncmec/cyber_tipline.xsd"
)


def schema() -> xmlschema.XMLSchema10:
    return load_schema(XSD)


class FakeCyberTipline(_Fake):
    """The fake, validating every document against ``XSD``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**{"xsd": XSD, **kwargs})


__all__ = ["XSD", "FakeCyberTipline", "FakeReport", "schema"]
