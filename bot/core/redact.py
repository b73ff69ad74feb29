"""Secrets never leave the process: one function every outbound text goes through.

Known secret values (tokens, DSN passwords) are replaced wherever they appear, and anything
shaped like a credential is masked even when rollbot was not told about it: a password inside
a connection URI or a `password=` pair, and Slack tokens.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote, urlsplit

if TYPE_CHECKING:
    from collections.abc import Iterable

MASK = "***"
_URI_PASSWORD = re.compile(r"(?P<head>postgres(?:ql)?://[^:/@\s]*:)(?P<secret>[^@\s]*)(?=@)")
_KV_PASSWORD = re.compile(r"(?i)(?P<head>\bpassword\s*=\s*)(?P<secret>'(?:[^'\\]|\\.)*'|\S+)")
_SLACK_TOKEN = re.compile(r"\bxox[abpsre]-[A-Za-z0-9-]+|\bxapp-[A-Za-z0-9-]+")


def secrets_of(values: Iterable[str]) -> tuple[str, ...]:
    """The values themselves plus any password they embed (DSNs), longest first."""
    found: set[str] = set()
    for value in values:
        if not value:
            continue
        found.add(value)
        try:
            password = urlsplit(value).password
        except ValueError:
            password = None
        if password:
            found.update({password, unquote(password)})
        match = _KV_PASSWORD.search(value)
        if match:
            found.add(match["secret"].strip("'"))
    return tuple(sorted((s for s in found if len(s) >= 3), key=len, reverse=True))  # noqa: PLR2004


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every known secret (also URL-encoded) and credential-shaped strings masked."""
    variants = {v for s in secrets if s for v in (s, quote(s, safe=""))}
    for secret in sorted(variants, key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = _URI_PASSWORD.sub(lambda m: m["head"] + MASK if m["secret"] else m[0], text)
    text = _KV_PASSWORD.sub(lambda m: m["head"] + MASK, text)
    return _SLACK_TOKEN.sub(lambda m: m[0][:5] + MASK, text)
