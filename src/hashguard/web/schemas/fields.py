"""Field types of request bodies and parameters: stored text, metadata, strict numbers."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field
from typing_extensions import TypeAliasType

#: Text that is stored: PostgreSQL cannot keep a NUL character. Every text a request
#: carries has a pattern (this one, or a stricter one such as a name's), and a pattern
#: also refuses a lone surrogate (``"\ud800"``): pydantic matches patterns on UTF-8,
#: which cannot hold one. Both are 422 (tests/test_api_text.py checks every route), and
#: the OpenAPI document shows the pattern. Multipart fields: uploads.py (domain.text).
NO_NUL = r"^[^\x00]*$"


def Text(max_length: int) -> Any:
    return Field(default=None, max_length=max_length, pattern=NO_NUL)


StoredText = Annotated[str, Field(pattern=NO_NUL)]
#: Free metadata, any JSON a store can keep (JSON itself has no NaN; Python's parser does).
MetaValue = TypeAliasType(
    "MetaValue",
    "StoredText | int | Annotated[float, Field(allow_inf_nan=False)] | bool"
    " | list[MetaValue] | dict[StoredText, MetaValue] | None",
)
Metadata = dict[StoredText, MetaValue]


def not_a_boolean(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("a boolean is not an integer")  # noqa: TRY004 - pydantic wants ValueError
    return value


Flag = Annotated[bool, Field(strict=True)]
