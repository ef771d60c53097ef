"""A fake of Hive's Combined CSAM Detection API (Thorn Safer), from Hive's public docs.

``POST /api/v2/task/sync`` with ``Authorization: Token <key>`` and a multipart form
holding ``media``; answers ``{"status": [{"status": {"code": 200, ...}, "response":
{"output": {"file": {...}, "hashes": [...]}}}]}``. Source ids, hash sets and distances
are made up.

Behaviours beyond the contract's: ``test_set`` (a match from the ``test`` hash set),
``se`` (a match of type SE only), ``video`` (two scenes, the second matched; only with the
video key). The classifier's prediction on a ``no_match`` is ``classifier_score``.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import httpx

from tests.fakes import FakeService, Recorded, Reply

SYNC = "/api/v2/task/sync"
ASYNC = "/api/v2/task/async"
_CALLBACK = re.compile(rb'name="callback_url"\r\n\r\n([^\r]+)\r\n')


class FakeSafer(FakeService):
    def __init__(self, api_key: str, video_api_key: str | None = None) -> None:
        super().__init__()
        self.api_key = api_key
        self.video_api_key = video_api_key
        self.classifier_score = 0.12
        self.distance = 3
        #: async tasks taken: (task id, callback URL, video?)
        self.callbacks: list[tuple[str, str, bool]] = []
        self._tasks = itertools.count(1)

    def answer(self, request: Recorded, behaviour: str) -> Reply:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        if scheme != "Token" or key not in (self.api_key, self.video_api_key):
            return Reply.json(401, {"message": "Invalid API key"})
        if behaviour == "unauthorized":
            return Reply.json(403, {"message": f"Project of key {key} may not use this model"})
        if request.method != "POST" or request.path not in (SYNC, ASYNC):
            return Reply.json(404, {"message": "Not found"})
        if b'name="media"' not in request.body:
            return Reply.json(400, {"message": "exactly one of media or url is required"})
        if behaviour == "rate_limited":
            return self.throttled({"message": "Too many requests"})
        if behaviour == "server_error":
            return Reply.json(503, {"message": "Service unavailable"})
        if behaviour == "malformed":
            return Reply(status=200, body=b"{not json", headers={"Content-Type": "text/plain"})
        video = key == self.video_api_key
        if request.path == ASYNC:
            found = _CALLBACK.search(request.body)
            if found is None:
                return Reply.json(400, {"message": "callback_url is required for async tasks"})
            task = f"made-up-task-{next(self._tasks)}"
            self.callbacks.append((task, found.group(1).decode(), video))
            return Reply.json(200, {"id": task, "code": 200, "status": []})
        return Reply.json(200, _task(self._output(behaviour, video=video)))

    def deliver(self, behaviour: str = "match", index: int = -1) -> httpx.Response:
        """POST the answer of the ``index``-th async task to its callback URL."""
        task, url, video = self.callbacks[index]
        body = _task(self._output(behaviour, video=video), task)
        return httpx.post(url, json=body, timeout=30)

    def _output(self, behaviour: str, *, video: bool) -> dict[str, Any]:
        if behaviour == "no_match":
            return {
                "file": {
                    "fileType": "video" if video else "image",
                    "reasons": [],
                    "classifierPrediction": {"csam": self.classifier_score, "other": 0.5},
                },
                "hashes": [_hash("videoSaferhashv0" if video else "saferhashv0", [], None)],
            }
        if behaviour not in ("match", "test_set", "se", "video"):
            raise ValueError(f"unknown behaviour {behaviour!r}")
        hash_set = "test" if behaviour == "test_set" else "thorn-made-up-set"
        types = ["SE"] if behaviour == "se" else ["CSAM"]
        matched = {"hashSet": hash_set, "matches": [self._match()]}
        if video:
            hashes = [
                _hash("videoSaferhashv0", [], None, scene=(0, 4, 0)),
                _hash("videoSaferhashv0", types, matched, scene=(4, 9, 120)),
            ]
        else:
            hashes = [_hash("saferhashv0", types, matched), _hash("md5", [], None)]
        return {
            "file": {
                "fileType": "video" if video else "image",
                "reasons": ["matched"],
                "classifierPrediction": None,
            },
            "hashes": hashes,
        }

    def _match(self) -> dict[str, Any]:
        return {
            "sourceId": "made-up-source-0001",
            "matchDistance": self.distance,
            "matchMetadata": {},
            "matchTransformations": [],
        }


def _hash(
    hash_type: str,
    types: list[str],
    source: dict[str, Any] | None,
    scene: tuple[float, float, int] | None = None,
) -> dict[str, Any]:
    start, end, frame = scene if scene else (None, None, None)
    return {
        "hashType": hash_type,
        "matchTypes": types,
        "reasons": ["matched"] if source else [],
        "sources": [source] if source else [],
        "isLetterboxed": False,
        "startTimestamp": start,
        "endTimestamp": end,
        "frameIndex": frame,
    }


def _task(output: dict[str, Any], task: str = "made-up-task-id") -> dict[str, Any]:
    return {
        "id": task,
        "code": 200,
        "project_id": 1,
        "status": [
            {
                "status": {"code": 200, "message": "SUCCESS"},
                "response": {"input": {"id": task}, "output": output},
            }
        ],
    }
