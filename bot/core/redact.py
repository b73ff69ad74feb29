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
    """The values themselves plus any password they embed (DSNs), longest first.

    A URL libpq cannot parse is still searched: libpq quotes such a URL whole in its error, and
    a part of it (the password) may be all that survives a cut.
    """
    found: set[str] = set()
    for value in values:
        if not value:
            continue
        found.add(value)
        try:
            password = urlsplit(value).password
        except ValueError:
            password = None
        passwords = {password} if password else set()
        passwords |= {m["secret"] for m in _URI_PASSWORD.finditer(value) if m["secret"]}
        passwords |= {m["secret"].strip("'") for m in _KV_PASSWORD.finditer(value)}
        found.update(p for secret in passwords for p in (secret, unquote(secret)))
    return tuple(sorted((s for s in found if len(s) >= 3), key=len, reverse=True))  # noqa: PLR2004


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every known secret (also URL-encoded) and credential-shaped strings masked."""
    text = _known(text, secrets)
    text = _URI_PASSWORD.sub(lambda m: m["head"] + MASK if m["secret"] else m[0], text)
    text = _KV_PASSWORD.sub(lambda m: m["head"] + MASK, text)
    return _SLACK_TOKEN.sub(lambda m: m[0][:5] + MASK, text)


class Redactor:
    """rollbot's known secrets, and the one way text it writes anywhere is cleaned of them.

    Built once from the configuration by the composition root and handed to each channel
    (the store, Slack, the terminal, the logs), so no channel depends on its callers having
    cleaned what they pass. It holds values only: the core stays pure.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = secrets_of(secrets)

    def text(self, text: str) -> str:
        """`text` with every known secret and credential-shaped string masked."""
        return redact(text, self.secrets)

    def value(
        self, value: object, *, keep: frozenset[str] = frozenset(), shapes: bool = True
    ) -> object:
        """A JSON-like value with every string in it cleaned; keys in `keep` stay as they are.

        With `shapes=False` only the known secrets are masked (see `known`).
        """
        if isinstance(value, str):
            return self.text(value) if shapes else self.known(value)
        if isinstance(value, dict):
            return {
                k: v if k in keep else self.value(v, keep=keep, shapes=shapes)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.value(v, keep=keep, shapes=shapes) for v in value]
        return value

    def known(self, text: str) -> str:
        """`text` with the known secrets masked and nothing else touched.

        For text that must stay exactly as written where it holds no secret (SQL that will
        run): the credential shapes would also mask an innocent `password = $1`.
        """
        return _known(text, self.secrets)

    def holds(self, text: str) -> bool:
        """Whether a known secret is in `text`."""
        return self.known(text) != text


def _known(text: str, secrets: Iterable[str]) -> str:
    variants = {v for s in secrets if s for v in (s, quote(s, safe=""))}
    for secret in sorted(variants, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def mask_literals(query: str) -> str:
    """A query with every literal as `$n` and no comments, on one line.

    PostgreSQL's own lexer finds the literals, so no quoting trick (E'…', $$…$$, U&'…') hides
    one. pg_stat_activity cuts long queries, so a literal may be unterminated: the text from
    there on is withheld.
    """
    # Imported here: every command masks its output, few ever show another session's query.
    from pglast.parser import ParseError  # noqa: PLC0415

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
    from pglast.parser import scan  # noqa: PLC0415 - see mask_literals

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


_FAILING_ROW = re.compile(r"Failing row contains \(.*\)", re.DOTALL)
# "Key (a)=(1) already exists.", "Key (a)=(1) is not present in table …", and both keys of
# an exclusion: "Key (r)=(…) conflicts with existing key (r)=(…)."
_KEY_VALUES = re.compile(
    r"(?P<key>[Kk]ey) \((?P<columns>[^()]*)\)=\(.*?\)(?= is | already | conflicts |\.?\s*$)",
    re.DOTALL,
)


def mask_row_values(detail: str) -> str:
    """PostgreSQL's DETAIL with the row values it quotes withheld, the column names kept.

    A constraint error quotes the failing row whole, or the key's values, and those are the
    application's data (tokens, emails) from tables rollbot only happens to touch: not for a
    Slack thread or a stored run. Which constraint and which columns is what the on-call needs.
    """
    masked = _FAILING_ROW.sub("Failing row contains (values withheld)", detail)
    return _KEY_VALUES.sub(lambda m: f"{m['key']} ({m['columns']})=(values withheld)", masked)


# What can move a terminal's cursor, recolour or clear it, overwrite a line (`\r`) or reorder
# what a reader sees (bidirectional overrides): shown as escapes, never acted on. A tab and a
# newline stay; a newline is also how rollbot's own text is laid out.
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_LATIN1 = 0xFF


def inert_controls(text: str) -> str:
    r"""`text` with every control character written as its escape (`\x1b`, `\u202e`).

    Object names, PostgreSQL's messages and other sessions' queries come from people who can
    create objects or connect to the target; printed as they are, an escape sequence in a
    table's name could redraw the plan a person is about to approve.
    """
    return _CONTROLS.sub(_escape_control, text)


def _escape_control(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= _LATIN1 else f"\\u{code:04x}"
