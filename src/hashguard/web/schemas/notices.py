"""Shapes of /v1/notices: a DSA Art. 16 notice sent, and its acknowledgement."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from hashguard.domain.notices import NoticeState, NotifierKind
from hashguard.notices.intake import MAX_EXPLANATION, MAX_ITEMS, MAX_URL
from hashguard.web.schemas.cases import REASON_PATTERN
from hashguard.web.schemas.fields import NO_NUL, Flag

#: an http(s) URL, without NUL, space or line break (explicit characters: ``\s`` means
#: more in Python than in the document's JSON Schema)
URL_PATTERN = r"^https?://[^\x00 \t\r\n]+$"
#: an e-mail address as people write one (not verified: the platform acknowledges it)
EMAIL_PATTERN = r"^[^\x00 \t\r\n@]+@[^\x00 \t\r\n@]+$"

Url = Annotated[str, Field(max_length=MAX_URL, pattern=URL_PATTERN)]
ContentId = Annotated[str, Field(min_length=1, max_length=500, pattern=NO_NUL)]


class NotifierIn(BaseModel):
    """Who sends the notice. Optional for a notice of child sexual abuse material (Art.
    16(2)); for any other category ``name`` and ``email`` are required. A token bound to a
    configured notifier (settings ``notice_notifiers``) sends as that notifier."""

    model_config = ConfigDict(extra="forbid")

    kind: NotifierKind = NotifierKind.USER
    name: str | None = Field(default=None, min_length=1, max_length=200, pattern=NO_NUL)
    email: str | None = Field(default=None, max_length=320, pattern=EMAIL_PATTERN)
    #: the notifier's own reference of the notice (e.g. a hotline's report number)
    reference: str | None = Field(default=None, min_length=1, max_length=200, pattern=NO_NUL)


def _some_item_schema(schema: dict[str, Any]) -> None:
    """At least one URL or content id, in the document as in validation."""
    schema["anyOf"] = [
        {"required": ["urls"], "properties": {"urls": {"minItems": 1}}},
        {"required": ["content_ids"], "properties": {"content_ids": {"minItems": 1}}},
    ]


class _Notice(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_some_item_schema)

    urls: list[Url] = Field(default_factory=list, max_length=MAX_ITEMS)
    content_ids: list[ContentId] = Field(default_factory=list, max_length=MAX_ITEMS)
    #: why the content is illegal (at least one character that is not a space)
    explanation: str = Field(max_length=MAX_EXPLANATION, pattern=REASON_PATTERN)

    @model_validator(mode="after")
    def _some_item(self) -> _Notice:
        if not self.urls and not self.content_ids:
            raise ValueError("a notice names at least one URL or content id")
        return self


class CsamNoticeIn(_Notice):
    """A notice of child sexual abuse material: the notifier and the good-faith
    statement are optional (Art. 16(2); Directive 2011/93/EU Arts. 3-7)."""

    category: Literal["child_sexual_abuse"]
    notifier: NotifierIn | None = None
    good_faith: Flag = False


class IdentifiedNotifierIn(NotifierIn):
    """The notifier of a notice that is not about child sexual abuse material: name
    and e-mail required (Art. 16(2)(c))."""

    name: str = Field(min_length=1, max_length=200, pattern=NO_NUL)
    email: str = Field(max_length=320, pattern=EMAIL_PATTERN)


def _only_a_boolean(value: Any) -> Any:
    if not isinstance(value, bool):
        raise ValueError("good_faith is true or false")  # noqa: TRY004 - pydantic wants ValueError
    return value


class OtherNoticeIn(_Notice):
    """A notice of another kind of illegal content: the notifier's name and e-mail and
    the statement of good faith are required (Art. 16(2))."""

    category: Literal[
        "protection_of_minors",
        "non_consensual_behaviour",
        "illegal_or_harmful_speech",
        "violence",
        "intellectual_property_infringements",
        "data_protection_and_privacy_violations",
        "scams_and_fraud",
        "other",
    ]
    notifier: IdentifiedNotifierIn
    good_faith: Annotated[Literal[True], BeforeValidator(_only_a_boolean)]


#: A notice: at least one URL or content id (at most 100 of each), the category, an
#: explanation of why the content is illegal, the notifier and a statement of good faith
#: (both required unless the category is ``child_sexual_abuse``).
NoticeIn = Annotated[CsamNoticeIn | OtherNoticeIn, Field(discriminator="category")]


class NoticeAck(BaseModel):
    """The acknowledgement of receipt (Art. 16(5)): the notice id, when it was received
    and what happens next. ``priority`` 0: a configured trusted flagger or hotline."""

    notice_id: int
    state: NoticeState
    received_at: datetime
    priority: int
    items: int
    next_steps: str
