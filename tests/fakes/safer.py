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

from typing import Any

from tests.fakes import FakeService, Recorded, Reply

SYNC = "/api/v2/task/sync"


class FakeSafer(FakeService):
    def __init__(self, api_key: str, video_api_key: str | None = None) -> None:
        super().__init__()
        self.api_key = api_key
        self.video_api_key = video_api_key
        self.classifier_score = 0.12
        self.distance = 3

    def answer(self, request: Recorded, behaviour: str) -> Reply:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        if scheme != "Token" or key not in (self.api_key, self.video_api_key):
            return Reply.json(401, {"message": "Invalid API key"})
        if behaviour == "unauthorized":
            return Reply.json(403, {"message": f"Project of key {key} may not use this model"})
        if request.method != "POST" or request.path != SYNC:
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
        return Reply.json(200, _task(self._output(behaviour, video=video)))

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


def _task(output: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "made-up-task-id",
        "code": 200,
        "project_id": 1,
        "status": [
            {
                "status": {"code": 200, "message": "SUCCESS"},
                "response": {"input": {"id": "made-up-task-id"}, "output": output},
            }
        ],
    }
