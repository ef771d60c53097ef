"""Reading an upload into memory, under a size limit, never onto disk.

Uploads may be abusive material: nothing of a non-matching upload may be stored, so
the body is streamed into memory (refused past the limit) and multipart is parsed
there with python-multipart, instead of spooling file parts to temporary files.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from hashguard.domain.text import printable, unstorable
from hashguard.web.problems import ProblemError

TEXT_FIELD_LIMIT = 4096


@dataclass(kw_only=True, slots=True)
class Upload:
    data: bytes
    fields: dict[str, str] = field(default_factory=dict)


async def read_upload(request: Request, *, file_field: str = "file") -> Upload:
    """The uploaded bytes and text fields: multipart/form-data with a ``file`` part, or
    the raw body of any other content type. The size limit is the gate's (gate.py)."""
    body = await request.body()
    content_type, options = parse_options_header(request.headers.get("content-type"))
    if content_type != b"multipart/form-data":
        return Upload(data=body)
    boundary = options.get(b"boundary")
    if not boundary:
        raise ProblemError(400, "Bad request", "multipart body without a boundary")
    return _parse_multipart(body, boundary, file_field)


def _parse_multipart(body: bytes, boundary: bytes, file_field: str) -> Upload:
    parts: list[tuple[dict[bytes, bytes], bytearray]] = []
    header_name, header_value = bytearray(), bytearray()
    ended = []  # python-multipart's finalize() does not check that the body was complete

    def end() -> None:
        ended.append(True)

    def part_begin() -> None:
        parts.append(({}, bytearray()))

    def header_field(data: bytes, start: int, end: int) -> None:
        header_name.extend(data[start:end])

    def header_data(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])

    def header_end() -> None:
        parts[-1][0][bytes(header_name).lower()] = bytes(header_value)
        header_name.clear()
        header_value.clear()

    def part_data(data: bytes, start: int, end: int) -> None:
        parts[-1][1].extend(data[start:end])

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": part_begin,
            "on_header_field": header_field,
            "on_header_value": header_data,
            "on_header_end": header_end,
            "on_part_data": part_data,
            "on_end": end,
        },
    )
    try:
        parser.write(body)
        parser.finalize()
    except (MultipartParseError, ValueError) as exc:
        raise ProblemError(400, "Bad request", f"malformed multipart body: {exc}") from None
    if not ended:
        raise ProblemError(400, "Bad request", "multipart body ends before its closing boundary")
    upload = Upload(data=b"")
    found = False
    for headers, content in parts:
        _, disposition = parse_options_header(headers.get(b"content-disposition"))
        name = disposition.get(b"name", b"").decode("utf-8", "replace")
        if name == file_field and not found:
            upload.data, found = bytes(content), True
        elif name and b"filename" not in disposition and len(content) <= TEXT_FIELD_LIMIT:
            # a part with a filename is a file, not a text field: it fills no field
            upload.fields[name] = _text_field(name, bytes(content))
    if not found:
        raise ProblemError(400, "Bad request", f"multipart body without a '{file_field}' part")
    return upload


def _text_field(name: str, content: bytes) -> str:
    """A multipart text field, refused (422) as a JSON or query text would be when no
    store could keep it (domain.text): before anything is hashed."""
    text = content.decode("utf-8", "replace")
    problem = unstorable(name) or unstorable(text)
    if problem is not None:
        raise ProblemError(422, "Invalid request", f"form field {printable(name)!r}: {problem}")
    return text
