"""HMA's request and response shapes, written as our own test data.

Read from HMA's Flask blueprints and pydantic schemas (facebook/ThreatExchange,
``hasher-matcher-actioner/src/OpenMediaMatch/blueprints`` and ``schemas``, commit
baefb4ed67b6cdc1d4c82dbaef858d50866ac424, 2026-07-17); the standalone
``openapi/openapi.yaml`` the issue names exists only on the unmerged pull request 1826
(commit 5326b9f5dc9549275caec4d6e1900a7d9f869d64) and agrees with the blueprints on
these shapes. Strict and closed: an int is not a str, no field is extra.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, RootModel, StrictBool, StrictFloat, StrictInt, StrictStr


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Message(_Closed):  # ErrorResponse / SuccessResponse
    message: StrictStr


class MatchWithDistance(_Closed):
    bank_content_id: StrictInt
    distance: StrictStr


class RawLookup(_Closed):
    matches: list[StrictInt]


class RawLookupWithDistance(_Closed):
    matches: list[MatchWithDistance]


#: GET /m/lookup with signal_type: bank name -> matches
LookupByBank = RootModel[dict[str, list[MatchWithDistance]]]
#: POST /m/lookup: signal type -> bank name -> matches
LookupBySignalType = RootModel[dict[str, dict[str, list[MatchWithDistance]]]]
#: /h/hash: signal type -> hash
Hashes = RootModel[dict[str, StrictStr]]


class BankConfig(_Closed):
    name: StrictStr
    matching_enabled_ratio: StrictFloat


Banks = RootModel[list[BankConfig]]


class AddedContent(_Closed):  # POST /c/bank/{name}/content and /signal
    id: StrictInt
    signals: dict[str, StrictStr]


class Deleted(_Closed):  # DELETE /c/bank/{name}/content/{id}
    deleted: StrictInt


class SignalTypeConfig(_Closed):
    name: StrictStr
    enabled_ratio: StrictFloat


class ContentTypeConfig(_Closed):
    name: StrictStr
    enabled: StrictBool


SignalTypes = RootModel[list[SignalTypeConfig]]
ContentTypes = RootModel[list[ContentTypeConfig]]


class IndexStatus(_Closed):
    present: StrictBool
    built_to: StrictInt
    size: StrictInt


IndexStatuses = RootModel[dict[str, IndexStatus]]


class SignalTypeIndex(_Closed):  # GET /c/signal_type/index, per signal type (the
    # blueprint's keys; PR 1826's openapi.yaml comments the route out)
    db_size: StrictInt
    index_size: StrictInt
    index_out_of_date: StrictBool
    newest_db_item: StrictInt
    index_built_to: StrictInt


SignalTypeIndexes = RootModel[dict[str, SignalTypeIndex]]


class Distance(_Closed):
    distance: StrictInt


class VpdqSimilarity(_Closed):  # threatexchange's VPDQSimilarityInfo, as HMA dumps it
    query_match_percent: StrictFloat
    compared_match_percent: StrictFloat


#: POST /m/compare: signal type -> [matched, {"distance": n}] (vpdq: its similarity)
Compare = RootModel[dict[str, tuple[StrictBool, Distance | VpdqSimilarity]]]
#: HMA's distance string of a vpdq match (VPDQSimilarityInfo.pretty_str): the share of
#: the query's frames that matched, then of the listed video's, e.g. "100%[92%]"
VPDQ_DISTANCE = r"(\d+)%\[(\d+)%\]"


class BankContent(_Closed):  # GET /c/bank/{name}/content/{id} (BankContentResponse)
    id: StrictInt
    disable_until_ts: StrictInt
    original_media_uri: StrictStr | None
    bank: BankConfig
    signals: dict[str, StrictStr] | None = None
    note: StrictStr | None = None


#: GET /c/exchanges and /c/exchanges/apis: names
Names = RootModel[list[StrictStr]]


class ExchangeApiConfig(_Closed):  # GET/POST /c/exchanges/api/{api}
    supports_authentification: StrictBool
    has_set_authentification: StrictBool


class SchemaField(_Closed):  # utils/exchange_schema.py's field descriptor
    name: StrictStr
    type: StrictStr
    required: StrictBool
    default: Any
    help: StrictStr
    choices: list[Any] | None


class SchemaSection(_Closed):
    fields: list[SchemaField]


class ExchangeApiSchema(_Closed):  # GET /c/exchanges/api/{api}/schema
    config_schema: SchemaSection
    credentials_schema: SchemaSection | None


class ExchangeConfig(BaseModel):  # GET/PUT /c/exchange/{name}: a config, open-ended
    model_config = ConfigDict(extra="allow", strict=True)
    name: StrictStr
    api: StrictStr
    enabled: StrictBool


class FetchStatus(_Closed):  # GET /c/exchange/{name}/status (storage FetchStatus)
    checkpoint_ts: StrictInt | None
    running_fetch_start_ts: StrictInt | None
    last_fetch_complete_ts: StrictInt | None
    last_fetch_succeeded: StrictBool | None
    up_to_date: StrictBool
    fetched_items: StrictInt


#: HMA's /status bodies
STATUS_OK = "I-AM-ALIVE"
STATUS_NOT_READY = ("INDEX-NOT-LOADED", "INDEX-STALE")


def check(shape: Any, body: Any) -> Any:
    """``body`` validated against ``shape`` (raises pydantic's ValidationError)."""
    return shape.model_validate(body)
