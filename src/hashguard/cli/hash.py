"""``hashguard hash``: the signals of files, computed in the same isolated workers as a scan."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from hashguard.cli.context import fail, hashers_of, out, settings_of
from hashguard.domain.scans import printable_path
from hashguard.domain.signals import PdqMode, signals_shown
from hashguard.hashing.isolate import HashingPool
from hashguard.hashing.kernel import HashOptions

HASH_PDQ_MODE_OPTION = typer.Option(
    "--pdq-mode",
    help="reference: full pixels, bit-identical to HMA (default here: printed hashes may "
    "leave); fast: the scan's reduced-luma path, labelled fast.",
)


def hash_files(
    ctx: typer.Context,
    files: Annotated[list[Path], typer.Argument(help="Files to hash.")],
    dihedral: Annotated[
        bool, typer.Option(help="Also print PDQ hashes of the 7 rotations/mirrors.")
    ] = False,
    frames: Annotated[
        int | None, typer.Option(help="Hash up to this many frames of animated images.", min=1)
    ] = None,
    pdq_mode: Annotated[PdqMode, HASH_PDQ_MODE_OPTION] = PdqMode.REFERENCE,
) -> None:
    """Print MD5, SHA-1, SHA-256 and PDQ (with quality and mode) of each file as JSON.

    One file prints one JSON object; several print one object per line. PDQ hashes are
    reference hashes unless ``--pdq-mode fast`` is given: a printed hash may be copied
    into a list or a report, and only reference hashes leave hashguard.
    """
    settings = settings_of(ctx)
    hashers = hashers_of(ctx)
    options = HashOptions(
        max_pixels=settings.max_pixels,
        max_frames=frames or settings.max_frames,
        dihedral=dihedral,
        pdq_mode=pdq_mode,
        animation_frames=settings.animation_frames,
        hashers=hashers,
    )
    failed = False
    with HashingPool(
        workers=min(len(files), settings.workers),
        options=options,
        timeout=settings.decode_timeout,
        video_timeout=settings.video_timeout,
        memory_mb=settings.worker_memory_mb,
    ) as pool:
        futures = [(path, pool.submit(str(path))) for path in files]
        for path, future in futures:
            output = future.result()
            shown: dict[str, object] = {"path": printable_path(str(path))}
            if output.signals is not None:
                shown.update(signals_shown(output.signals, dihedral=dihedral))
            if output.problem is not None:
                shown["problem"] = str(output.problem)
                shown["reason"] = output.reason
                failed = failed or output.signals is None
            out.print(json.dumps(shown, indent=2 if len(files) == 1 else None), markup=False)
    if failed:
        raise fail("some files could not be read")
