"""Shapes of /v1/notices: a DSA Art. 16 notice sent, and its acknowledgement."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hashguard.domain.notices import NoticeCategory, NoticeState, NotifierKind
from hashguard.notices.intake import MAX_EXPLANATION, MAX_ITEMS, MAX_URL
from hashguard.web.schemas.fields import NO_NUL, Flag

#: an http(s) URL, without NUL or whitespace
URL_PATTERN = r"^https?://[^\x00\s]+$"
#: an e-mail address as people write one (not verified: the platform acknowledges it)
EMAIL_PATTERN = r"^[^\x00\s@]+@[^\x00\s@]+$"

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


class NoticeIn(BaseModel):
    """A notice: at least one URL or content id (at most 100 in all), the category, an
    explanation of why the content is illegal, the notifier and a statement of good
    faith (both required unless the category is ``child_sexual_abuse``)."""

    model_config = ConfigDict(extra="forbid")

    urls: list[Url] = Field(default_factory=list, max_length=MAX_ITEMS)
    content_ids: list[ContentId] = Field(default_factory=list, max_length=MAX_ITEMS)
    category: NoticeCategory
    explanation: str = Field(min_length=1, max_length=MAX_EXPLANATION, pattern=NO_NUL)
    notifier: NotifierIn | None = None
    good_faith: Flag = False

    @model_validator(mode="after")
    def _art_16(self) -> NoticeIn:
        count = len(self.urls) + len(self.content_ids)
        if count == 0:
            raise ValueError("a notice names at least one URL or content id")
        if count > MAX_ITEMS:
            raise ValueError(f"a notice names at most {MAX_ITEMS} URLs or content ids")
        if not self.explanation.strip():
            raise ValueError("a notice explains why the content is illegal")
        if self.category is not NoticeCategory.CHILD_SEXUAL_ABUSE:
            if self.notifier is None or not self.notifier.name or not self.notifier.email:
                raise ValueError("a notice of this category gives the notifier's name and email")
            if not self.good_faith:
                raise ValueError("a notice of this category states good faith (good_faith: true)")
        return self


class NoticeAck(BaseModel):
    """The acknowledgement of receipt (Art. 16(5)): the notice id, when it was received
    and what happens next. ``priority`` 0: a configured trusted flagger or hotline."""

    notice_id: int
    state: NoticeState
    received_at: datetime
    priority: int
    items: int
    next_steps: str
