"""Reference PDQ hashes for content whose hashes are about to leave hashguard.

A file is matched with the hashes of the scan's PDQ mode (``fast`` by default). Only
reference-mode hashes, bit-identical to HMA's and to what list holders compute, may
leave: webhooks, evidence, remote lookups, allow-bank entries, reports, exchange
submissions. ``with_reference`` computes them for one item when needed;
``result_with_reference`` is the pipeline's one call, before evidence, case and actions.
"""

from __future__ import annotations

import dataclasses
import logging

from hashguard.domain.scans import FileResult, Outcome
from hashguard.domain.signals import FileSignals, PdqHash, PdqMode
from hashguard.hashing.isolate import HashingPool
from hashguard.hashing.kernel import HashOptions, HashOutput, hash_data, hash_path

log = logging.getLogger(__name__)


def reference_options(limits: HashOptions) -> HashOptions:
    """``limits`` (pixel cap, frames, file size) in reference mode, without dihedral
    variants: what an exit needs and nothing more."""
    return dataclasses.replace(
        limits, pdq_mode=PdqMode.REFERENCE, dihedral=False, also_reference=False
    )


def with_reference(
    signals: FileSignals,
    *,
    limits: HashOptions,
    pool: HashingPool | None = None,
    data: bytes | None = None,
    path: str | None = None,
) -> FileSignals:
    """``signals`` with reference PDQ hashes (``pdq_reference``) when an exit needs them.

    Contract:

    - Returns ``signals`` itself when nothing is needed: no PDQ hash (not an image), every
      frame's hash already made in reference mode, or ``pdq_reference`` already there.
    - Otherwise hashes the content again in reference mode, under ``limits``' decode
      limits: the upload's ``data`` or the file at ``path`` (``data`` wins when both are
      given). With ``pool`` the decoding runs in an isolated worker (the scan pipeline
      passes its ``HashingPool``); without one it runs in this process, which is only
      for bytes that already went through an isolated worker when they were scanned
      (e.g. the evidence vault's copy, when a person decides a case).
    - The content must be the one ``signals`` describe: if its SHA-256 differs (the file
      changed since it was hashed), or it does not decode in reference mode, ``signals``
      is returned unchanged and a warning logged. The exits then carry no PDQ hash of it
      (they never fall back to a fast one).
    - Raises ``hashguard.hashing.isolate.PoolStopped`` when the pool stops (no item is
      to blame), ``ValueError`` when neither ``data`` nor ``path`` is given.
    """
    if not signals.needs_reference:
        return signals
    if data is None and path is None:
        raise ValueError("with_reference needs the content: data or path")
    reference = _rehashed(signals, reference_options(limits), pool=pool, data=data, path=path)
    if reference is None:
        return signals
    return dataclasses.replace(signals, pdq_reference=reference)


def confirmed(
    signals: FileSignals,
    *,
    options: HashOptions,
    pool: HashingPool,
    data: bytes | None = None,
    path: str | None = None,
) -> FileSignals | None:
    """``signals`` with ``pdq`` made again in reference mode (dihedral variants as
    ``options`` say), for a ``fast`` hash that came near a list entry: the reference hash
    then decides the match (``hashguard.scan.confirm``). ``None`` when the content changed
    since it was hashed or does not decode in reference mode (logged)."""
    if data is None and path is None:
        raise ValueError("confirmed needs the content: data or path")
    wanted = dataclasses.replace(options, pdq_mode=PdqMode.REFERENCE, also_reference=False)
    reference = _rehashed(signals, wanted, pool=pool, data=data, path=path)
    if reference is None:
        return None
    return dataclasses.replace(signals, pdq=reference, pdq_reference=())


def _rehashed(
    signals: FileSignals,
    options: HashOptions,
    *,
    pool: HashingPool | None,
    data: bytes | None,
    path: str | None,
) -> tuple[PdqHash, ...] | None:
    """The reference-mode PDQ hashes of the content ``signals`` describe, or ``None``."""
    output: HashOutput
    if pool is not None:
        future = (
            pool.submit_data(data, options=options)
            if data is not None
            else pool.submit(str(path), options=options)
        )
        output = future.result()
    elif data is not None:
        output = hash_data(data, options)
    else:
        output = hash_path(str(path), options)
    again = output.signals
    if again is None or again.sha256 != signals.sha256:
        log.warning("reference PDQ hashes not computed: the content changed since it was hashed")
        return None
    reference = tuple(p for p in again.pdq if p.mode is PdqMode.REFERENCE)
    if output.problem is not None or not reference:
        log.warning("reference PDQ hashes not computed: %s", output.reason or "no frame")
        return None
    return reference


def result_with_reference(
    result: FileResult,
    *,
    limits: HashOptions,
    pool: HashingPool | None = None,
    data: bytes | None = None,
) -> FileResult:
    """``result`` with reference PDQ hashes when its hashes leave and it has none: a
    match that goes to a person (``Decision.needs_person``), whose evidence, case,
    webhooks and allow-bank entries carry them. The pipeline's one call after the
    decision and before evidence, case and actions, with its ``HashingPool``, the
    hashing options (``limits``) and the content's ``data`` (else the file is read again
    from ``result.path``). Every other result is returned as it is, at no cost. See
    ``with_reference`` for the contract."""
    signals = result.signals
    if (
        signals is None
        or not signals.needs_reference
        or result.outcome is not Outcome.MATCHED
        or not result.decision.needs_person
    ):
        return result
    path = None if data is not None else result.path
    done = with_reference(signals, limits=limits, pool=pool, data=data, path=path)
    return result if done is signals else dataclasses.replace(result, signals=done)
