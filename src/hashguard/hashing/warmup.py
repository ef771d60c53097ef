"""Imported by the forkserver that workers fork from: every first-use cost (decoder
plugins, the PDQ core and its self-check, the allocator's arenas) is paid once there,
so a new or recycled worker answers its first file as fast as its thousandth."""

from __future__ import annotations

import gc
import io

from PIL import Image

from hashguard.domain.signals import PdqMode
from hashguard.hashing.kernel import HashOptions, hash_data


def _warm() -> None:
    for image_format in ("JPEG", "PNG"):
        buffer = io.BytesIO()
        Image.new("RGB", (64, 64), (90, 120, 150)).save(buffer, image_format)
        for mode in PdqMode:
            hash_data(buffer.getvalue(), HashOptions(max_pixels=1 << 20, pdq_mode=mode))
    # What exists now lives as long as the worker: keep the collector off it.
    gc.collect()
    gc.freeze()


_warm()
