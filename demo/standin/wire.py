"""Slack's request and response encodings, without the server around them.

slack_sdk sends JSON bodies for some methods and form bodies for others, and in form bodies
structured arguments (`blocks`, `attachments`, the `files` list of an upload) travel as JSON
text. Callers of the stand-in want one dict either way, so decoding happens here once.
"""

from __future__ import annotations

import json
from email import policy
from email.parser import BytesParser
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from demo.standin.workspace import SlackError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from demo.standin.model import JSON

# Arguments that Slack accepts as JSON text inside a form field.
JSON_FIELDS = frozenset({"blocks", "attachments", "files", "metadata", "unfurls", "view"})


def parse_params(content_type: str, body: bytes, query: str = "") -> JSON:
    """The arguments of one call, merged from the query string and the body."""
    params: JSON = dict(parse_qsl(query, keep_blank_values=True))
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "application/json":
        try:
            loaded = json.loads(body or b"{}")
        except ValueError as exc:
            raise SlackError("invalid_json") from exc
        if not isinstance(loaded, dict):
            raise SlackError("invalid_json")
        params.update(loaded)
    elif kind == "multipart/form-data":
        params.update(_parse_multipart(content_type, body))
    elif body:
        params.update(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))
    return {key: _decode_field(key, value) for key, value in params.items()}


def _decode_field(key: str, value: object) -> object:
    if key in JSON_FIELDS and isinstance(value, str) and value[:1] in {"[", "{"}:
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _parse_multipart(content_type: str, body: bytes) -> JSON:
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = BytesParser(policy=policy.HTTP).parsebytes(head + body)
    fields: JSON = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if not name or not isinstance(payload, bytes):
            continue
        fields[str(name)] = payload if part.get_filename() else payload.decode("utf-8", "replace")
    return fields


def bearer_token(headers: Mapping[str, str], params: JSON) -> str | None:
    """The caller's token: the Authorization header, else the legacy `token` argument."""
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[len("bearer ") :].strip() or None
    token = params.get("token")
    return token if isinstance(token, str) and token else None


def flag(value: object) -> bool:
    """A boolean argument as Slack reads it: true, "true" and "1" are all yes."""
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes"}
    return bool(value)


def text_arg(params: JSON, key: str) -> str:
    """A string argument, empty when absent."""
    value = params.get(key)
    return "" if value is None else str(value)


def list_arg(params: JSON, key: str) -> tuple[JSON, ...]:
    """A list-of-objects argument such as `blocks`, empty when absent or malformed."""
    value = params.get(key)
    if not isinstance(value, list):
        return ()
    return tuple(item for item in value if isinstance(item, dict))


def encode(body: JSON | str) -> tuple[bytes, str]:
    """The response bytes and their content type."""
    if isinstance(body, str):
        return body.encode(), "text/plain; charset=utf-8"
    return json.dumps(body).encode(), "application/json; charset=utf-8"
