"""The hasher adapter kind, and the vetted built-in hashers behind it.

Scans and /v1/scan compute every built-in signal in one pass in the isolated worker
kernel (``hashing.kernel``); these adapters describe the same algorithms to the
registry and compute them the same way, so a contract test can hold any hasher,
ours or a plugin's, to the same rules.
"""

from __future__ import annotations

import hashlib
from abc import abstractmethod
from typing import ClassVar

from hashguard.domain.signals import Algorithm, PdqMode
from hashguard.hashing.kernel import HashOptions, hash_data
from hashguard.plugins import Adapter, AdapterKind


class Hasher(Adapter):
    """A vetted algorithm that turns a file's bytes into hash values.

    ``hash`` returns the canonical (lowercase hex) values, empty when the algorithm
    does not apply to the file (PDQ of a file that is not an image). It must be
    deterministic and must not raise for anything the bytes can cause.
    """

    kind: ClassVar[AdapterKind] = AdapterKind.HASHER
    algorithm: ClassVar[Algorithm]
    licence_required: ClassVar[bool] = False

    @abstractmethod
    def hash(self, data: bytes) -> tuple[str, ...]: ...


class _Hashlib(Hasher):
    terms = "standard cryptographic hash; no licence needed"

    def hash(self, data: bytes) -> tuple[str, ...]:
        return (hashlib.new(str(self.algorithm), data).hexdigest(),)


class Md5Hasher(_Hashlib):
    name = "md5"
    algorithm = Algorithm.MD5
    description = "MD5 of the file's bytes (most CSAM hash lists carry it)"


class Sha1Hasher(_Hashlib):
    name = "sha1"
    algorithm = Algorithm.SHA1
    description = "SHA-1 of the file's bytes"


class Sha256Hasher(_Hashlib):
    name = "sha256"
    algorithm = Algorithm.SHA256
    description = "SHA-256 of the file's bytes"


class PdqHasher(Hasher):
    name = "pdq"
    algorithm = Algorithm.PDQ
    description = "Meta's PDQ perceptual hash (pdqhash), reference pixels, first frame"
    terms = "PDQ is BSD-licensed by Meta"

    def hash(self, data: bytes) -> tuple[str, ...]:
        options = HashOptions(max_pixels=50_000_000, pdq_mode=PdqMode.REFERENCE)
        signals = hash_data(data, options).signals
        return tuple(pdq.value for pdq in signals.pdq) if signals is not None else ()
