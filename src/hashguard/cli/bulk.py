"""``hashguard scan … --engine ray``: the options of the Ray engine and the scanner they
build. Nothing here imports Ray; ``scan.rayengine`` does, once the scan starts."""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.markup import escape

from hashguard.cli.context import fail
from hashguard.hashing.isolate import HashingPool
from hashguard.matching.matcher import Matcher
from hashguard.scan.scanner import Scanner

PANEL = "Bulk scans on Ray (extra: hashguard[bulk])"


class Engine(StrEnum):
    LOCAL = "local"
    RAY = "ray"


EngineOption = Annotated[
    Engine,
    typer.Option(
        help="local: this machine's hashing processes; ray: a Ray cluster's actors.",
        rich_help_panel=PANEL,
    ),
]
AddressOption = Annotated[
    str | None,
    typer.Option(
        help="The Ray cluster: auto, ray://head:10001, or a GCS address (default: start "
        "Ray on this machine).",
        rich_help_panel=PANEL,
    ),
]
ActorsOption = Annotated[
    int | None,
    typer.Option(
        help="Hashing actors on Ray (default: the cluster's CPUs).", min=1, rich_help_panel=PANEL
    ),
]


@dataclass(frozen=True, kw_only=True, slots=True)
class RayChoice:
    """``--engine ray``'s options, and what the hashing actors are built with."""

    address: str | None
    actors: int | None
    cpus: int | None


def chosen(
    engine: Engine, *, address: str | None, actors: int | None, cpus: int | None
) -> RayChoice | None:
    """The Ray options asked for (``None``: the local engine)."""
    if engine is Engine.LOCAL:
        if address or actors:
            raise fail("--address and --actors apply to --engine ray")
        return None
    return RayChoice(address=address, actors=actors, cpus=cpus)


#: items the driver takes from Ray before it has recorded them (a window per actor)
DRIVER_BATCH = 64


def ray_scanner(
    stack: ExitStack,
    ray: RayChoice,
    *,
    object_scan: Any,
    object_store: Any,
    listing: Any,
    matcher: Matcher,
    pool: HashingPool,
    already_checked: Any = None,
    **parts: Any,
) -> Scanner:
    """The scanner of ``--engine ray``: Ray connected (or started here) for the scan's
    length, the bank index shipped once to every actor."""
    from hashguard.scan.rayactor import Shipment, ship_index  # noqa: PLC0415
    from hashguard.scan.rayengine import (  # noqa: PLC0415
        NeedsBulkExtra,
        RayEngine,
        RayObjectScanner,
        RayScanner,
        RaySettings,
    )

    try:
        engine = stack.enter_context(
            RayEngine(RaySettings(address=ray.address, actors=ray.actors, cpus=ray.cpus))
        )
    except NeedsBulkExtra as exc:
        raise fail(escape(str(exc))) from None
    rate = object_scan.rate if object_scan is not None else None
    shipment = Shipment(
        options=pool.options,
        timeout=pool.timeout,
        video_timeout=pool.limits.video,
        memory_mb=pool.memory_mb,
        index=ship_index(matcher),
        vpdq_frames=matcher.video_frames(),
        banks=matcher.banks,
        store_id=matcher.store_id,
        seq=matcher.seq,
        endpoint_url=object_scan.endpoint_url if object_scan is not None else None,
        rate=rate / engine.actors() if rate else None,
    )
    if object_scan is None:
        return RayScanner(
            engine=engine,
            shipment=shipment,
            matcher=matcher,
            pool=pool,
            batch=DRIVER_BATCH,
            **parts,
        )
    scanner = RayObjectScanner(
        engine=engine,
        shipment=shipment,
        objects=object_store,
        listing=listing,
        chosen=object_scan.chosen,
        already_checked=already_checked,
        matcher=matcher,
        pool=pool,
        batch=DRIVER_BATCH,
        **parts,
    )
    stack.callback(scanner.close)
    return scanner
