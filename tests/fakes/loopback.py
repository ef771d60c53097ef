"""The base of every loopback fake here: ``hashguard.demo.loopback.LoopbackServer``
(the review demo's fakes use it too)."""

from __future__ import annotations

from hashguard.demo.loopback import LoopbackServer

__all__ = ["LoopbackServer"]
