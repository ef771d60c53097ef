"""The classifier adapter kind: a service that scores a file and never matches it.

A classifier is configured and consulted like a remote matcher (``[remote.<name>]``
with its credentials sealed; asked within the same time budget, at the same time), so
it reuses the remote plumbing, but its kind is ``classifier`` and its answers are
``signal_only``: ``no_match`` with a score (and the service's own level) or
``not_answered``, never ``matched``. Whatever an implementation returns, ``match``
enforces that.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from dataclasses import replace
from typing import ClassVar, final

from pydantic import Field

from hashguard.domain.remote import RemoteResult, RemoteStatus
from hashguard.domain.signals import FileSignals
from hashguard.plugins import AdapterKind
from hashguard.remote.base import RemoteMatcher, RemoteSettings

log = logging.getLogger(__name__)


class ClassifierSettings(RemoteSettings):
    """Settings every classifier has; adapters extend them."""

    #: a score at or above this opens a review case ("classifier, no list match");
    #: None (the default): the classifier's scores only order the review queue
    classifier_review_threshold: float | None = Field(default=None, gt=0, le=1)


class Classifier(RemoteMatcher):
    """A classifier asked about one file: ``classify`` answers ``no_match`` with
    ``classifier_score`` in [0, 1] (or ``not_answered``: a timeout, a refusal, a rate
    limit, an error); it never raises."""

    kind: ClassVar[AdapterKind] = AdapterKind.CLASSIFIER

    @abstractmethod
    def classify(self, data: bytes, signals: FileSignals) -> RemoteResult: ...

    @final
    def match(self, data: bytes, signals: FileSignals) -> RemoteResult:
        """``classify``'s answer, held to the kind's contract: an answer that claims a
        match or carries no score in [0, 1] is ``not_answered``."""
        result = replace(self.classify(data, signals), signal_only=True)
        if result.status is RemoteStatus.NOT_ANSWERED:
            return replace(result, classifier_score=None, classifier_level=None, raw=None)
        score = result.classifier_score
        if result.status is not RemoteStatus.NO_MATCH or score is None or not 0 <= score <= 1:
            log.warning("classifier %s broke its contract (%s)", self.label, result.status)
            return RemoteResult(
                service=self.label,
                status=RemoteStatus.NOT_ANSWERED,
                method=result.method,
                reason=f"{self.label}: the classifier's answer is not a score",
                seconds=result.seconds,
                signal_only=True,
            )
        return replace(result, classification=None, match_type=None, distance=None, raw=None)

    def review_threshold(self) -> float | None:
        settings = self.settings
        return (
            settings.classifier_review_threshold
            if isinstance(settings, ClassifierSettings)
            else None
        )
