"""A fake PhotoDNA Cloud Match endpoint, from Microsoft's documented contract.

``POST /photodna/v1.0/Match[?enhance=bool]`` with ``Ocp-Apim-Subscription-Key`` and the
raw image as the body; the answer carries ``TrackingId``, ``Status{Code,Description}``,
``IsMatch`` and ``MatchDetails.MatchFlags[{Source, Violations, AdvancedInfo}]``. Codes,
violations and match ids here are made up in the documented shapes.

Behaviours beyond the contract's: ``status:NNNN`` answers 200 with that Status.Code,
``missing_fields`` a 200 JSON object without Status or IsMatch.
"""

from __future__ import annotations

import uuid

from tests.fakes import FakeService, Recorded, Reply

PATH = "/photodna/v1.0/Match"
IMAGE_TYPES = frozenset({"image/gif", "image/jpeg", "image/png", "image/bmp", "image/tiff"})
#: the APIM gateway's refusal of a missing or wrong key (its documented shape)
DENIED = {
    "statusCode": 401,
    "message": "Access denied due to invalid subscription key. "
    "Make sure to provide a valid key for an active subscription.",
}
DESCRIPTIONS = {
    3000: "OK",
    3002: "Invalid or missing request parameter(s)",
    3004: "Unknown scenario or unhandled error occurred while processing the request",
    3206: "Image is not valid",
    3208: "Image size is out of range",
}


class FakePhotoDna(FakeService):
    def __init__(self, key: str, *, source: str = "Test") -> None:
        super().__init__()
        self.key = key
        #: the MatchFlags source of a match (Microsoft's sample images match "Test")
        self.source = source
        self.violations = ["A1"]
        self.tracking_ids: list[str] = []

    def answer(self, request: Recorded, behaviour: str) -> Reply:
        if request.method != "POST" or request.path != PATH:
            return Reply.json(404, {"statusCode": 404, "message": "Resource not found"})
        if behaviour == "unauthorized" or request.headers.get("ocp-apim-subscription-key") != (
            self.key
        ):
            return Reply.json(401, DENIED)
        if behaviour == "rate_limited":
            return self.throttled(
                {"statusCode": 429, "message": "Rate limit is exceeded. Try again later."}
            )
        if behaviour == "server_error":
            return Reply.json(500, {"Message": "An error has occurred."})
        if behaviour == "malformed":
            return Reply(
                status=200,
                body=b"<html><body>upstream gateway page</body></html>",
                headers={"Content-Type": "text/html"},
            )
        if behaviour == "missing_fields":
            return Reply.json(200, {"TrackingId": self._tracking_id()})
        if request.headers.get("content-type") not in IMAGE_TYPES or not request.body:
            return self._status(3002, http=400)
        if behaviour.startswith("status:"):
            return self._status(int(behaviour.removeprefix("status:")))
        if behaviour == "match":
            return Reply.json(
                200,
                {
                    "TrackingId": self._tracking_id(),
                    "Status": {"Code": 3000, "Description": "OK"},
                    "ContentId": None,
                    "IsMatch": True,
                    "MatchDetails": {
                        "AdvancedInfo": [],
                        "MatchFlags": [
                            {
                                "AdvancedInfo": [{"Key": "MatchId", "Value": "117"}],
                                "Source": self.source,
                                "Violations": list(self.violations),
                            }
                        ],
                    },
                },
            )
        if behaviour == "no_match":
            return Reply.json(
                200,
                {
                    "TrackingId": self._tracking_id(),
                    "Status": {"Code": 3000, "Description": "OK"},
                    "ContentId": None,
                    "IsMatch": False,
                    "MatchDetails": {"AdvancedInfo": [], "MatchFlags": []},
                },
            )
        raise ValueError(f"unknown behaviour {behaviour!r}")

    def _status(self, code: int, http: int = 200) -> Reply:
        return Reply.json(
            http,
            {
                "TrackingId": self._tracking_id(),
                "Status": {"Code": code, "Description": DESCRIPTIONS.get(code, "Error")},
                "ContentId": None,
                "IsMatch": False,
                "MatchDetails": None,
            },
        )

    def _tracking_id(self) -> str:
        tracking = f"FAKE_{uuid.uuid4().hex}"
        self.tracking_ids.append(tracking)
        return tracking
