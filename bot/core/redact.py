"""Secrets never leave the process: one function every outbound text goes through.

Known secret values (tokens, DSN passwords) are replaced wherever they appear, and anything
shaped like a credential is masked even when rollbot was not told about it: a password inside
a connection URI or a `password=` pair, and Slack tokens. Other sessions' queries (named when
they block a lock) are shown only with their literals masked, as pg_stat_statements shows them,
because `ALTER ROLE app PASSWORD '…'` is a query like any other.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote, urlsplit

from pglast.parser import ParseError, scan

if TYPE_CHECKING:
    from collections.abc import Iterable

MASK = "***"
_URI_PASSWORD = re.compile(r"(?P<head>postgres(?:ql)?://[^:/@\s]*:)(?P<secret>[^@\s]*)(?=@)")
_KV_PASSWORD = re.compile(r"(?i)(?P<head>\bpassword\s*=\s*)(?P<secret>'(?:[^'\\]|\\.)*'|\S+)")
# PostgreSQL's lexer (libpg_query's scanner) names every literal and comment token.
_LITERALS = frozenset({"SCONST", "USCONST", "ICONST", "FCONST", "BCONST", "XCONST", "PARAM"})
_COMMENTS = frozenset({"SQL_COMMENT", "C_COMMENT"})
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


def mask_literals(query: str) -> str:
    """A query with every literal as `$n` and no comments, on one line.

    PostgreSQL's own lexer finds the literals, so no quoting trick (E'…', $$…$$, U&'…') hides
    one. pg_stat_activity cuts long queries, so a literal may be unterminated: the text from
    there on is withheld.
    """
    try:
        return _masked(query)
    except ParseError as exc:
        cut = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else 0
        try:
            head = _masked(query[:cut])
        except ParseError:
            return "(query withheld: it could not be read safely)"
        return f"{head} …(rest withheld)".lstrip()


def _masked(query: str) -> str:
    """Tokens as written, literals numbered, comments dropped, any gap between tokens one space."""
    text: list[str] = []
    literals = 0
    after = 0  # where the previous kept token ended
    for token in scan(query):
        if token.name in _COMMENTS:
            continue
        if text and token.start > after:
            text.append(" ")
        if token.name in _LITERALS:
            literals += 1
            text.append(f"${literals}")
        else:
            text.append(query[token.start : token.end + 1])
        after = token.end + 1
    return "".join(text)
