"""What a database failure means to the person who has to fix it.

libpq and PostgreSQL say "connection refused" or "permission denied for table t"; the person
reading it at 3 a.m. needs to know which database, which part of its URL or which object, and
the command that fixes it. The text is matched here, purely, after secrets have been taken
out of it; the adapters (`bot/target/database.py`, `bot/state/store.py`) pass what the driver
said and what they know about the connection.
"""

from __future__ import annotations

import re
from typing import NamedTuple
from urllib.parse import urlsplit

from bot.core.errors import PrivilegeError

_QUOTED = r'"([^"]*)"'
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_REFUSED = (
    r'connection to server at "([^"]*)"(?: \([^)]*\))?, port (\d+) failed: connection refused'
)
_TERMINATED = (
    r"terminating connection due to administrator command|server closed the connection"
    r"|consuming input failed|connection (?:is lost|has been lost)"
)
_DENIED = re.compile(r"permission denied for (?P<kind>[a-z ]+?) (?P<name>\S+)$")


class Cause(NamedTuple):
    """Why a connection failed, and whether trying again can help."""

    why: str
    todo: str
    lasting: bool  # a wrong setting: retrying will not help


def connection_cause(text: str, conninfo: str = "") -> Cause:
    """The cause of a failed connection, from libpq's text (already redacted).

    `conninfo` is only looked at to say which part of a URL is wrong; nothing of it is
    quoted back, since the wrong part may be the password.
    """
    lowered = text.lower()
    for rule in _RULES:
        match = re.search(rule.pattern, text, re.IGNORECASE)
        if match:
            part = url_part_with_bad_escape(conninfo) or "URL"
            return Cause(rule.why.format(*match.groups(), part=part), rule.todo, rule.lasting)
    first = text.strip().splitlines()[0] if text.strip() else "no message"
    if "connection is bad" in lowered or "invalid" in lowered:
        return Cause(
            f"its connection string is invalid: {first}",
            "correct the connection string",
            lasting=True,
        )
    return Cause(
        f"PostgreSQL's client said: {first}",
        "check the host, port, database name and credentials, and that the server is up",
        lasting=False,
    )


def url_part_with_bad_escape(conninfo: str) -> str | None:
    """Which part of a URL holds a `%` that does not start a `%XX` escape."""
    if "://" not in conninfo:
        return None
    try:
        parts = urlsplit(conninfo)
    except ValueError:
        return None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    for name, value in (
        ("user name", user),
        ("password", password),
        ("host", hostport),
        ("database name", parts.path),
        ("query parameters", parts.query),
    ):
        if _BAD_ESCAPE.search(value):
            return name
    return None


class _Rule(NamedTuple):
    pattern: str  # what libpq or the server says for this cause
    why: str  # `{0}`, `{1}`: the pattern's groups; `{part}`: the URL part badly encoded
    todo: str
    lasting: bool  # a wrong setting: retrying will not help


# First match wins.
_RULES = (
    _Rule(
        r"invalid percent-encoded token",
        "the {part} in its URL has an invalid percent-encoding",
        "in a URL a % must start an escape such as %40: write a literal % as %25 "
        "(and @ as %40, : as %3A, / as %2F)",
        lasting=True,
    ),
    *(
        _Rule(
            pattern,
            'its port "{0}" is not a port number (1 to 65535)',
            "correct the port in the URL; PostgreSQL's default is 5432",
            lasting=True,
        )
        for pattern in (
            r"invalid port number: " + _QUOTED,
            r"invalid integer value " + _QUOTED + r' for connection option "port"',
        )
    ),
    _Rule(
        r"invalid URI query parameter: " + _QUOTED,
        'its URL has the unknown parameter "{0}"',
        "remove it or correct its name (libpq's parameters, such as sslmode or "
        "connect_timeout, are listed in PostgreSQL's documentation)",
        lasting=True,
    ),
    _Rule(
        r"invalid connection option " + _QUOTED,
        'its connection string has the unknown option "{0}"',
        "remove it or correct its name",
        lasting=True,
    ),
    *(
        _Rule(
            pattern,
            'the host name "{0}" cannot be resolved (DNS)',
            "check the host in the URL, and that this machine can resolve it",
            lasting=False,
        )
        for pattern in (
            r"failed to resolve host '([^']*)'",
            r"could not translate host name " + _QUOTED,
        )
    ),
    _Rule(
        _REFUSED,
        "nothing accepts connections at {0}, port {1} (connection refused)",
        "check the host and port in the URL, and that PostgreSQL is running and listening there",
        lasting=False,
    ),
    _Rule(
        r"timeout expired|connection timeout",
        "the server did not answer within the connect timeout",
        "check the host and port, any firewall in between, and ROLLBOT_CONNECT_TIMEOUT",
        lasting=False,
    ),
    _Rule(
        r"database " + _QUOTED + r" does not exist",
        'the server has no database "{0}"',
        "correct the database name (the path after the host in the URL)",
        lasting=True,
    ),
    _Rule(
        r"password authentication failed for user " + _QUOTED,
        'the server refused the password of user "{0}" (authentication failed)',
        "correct the user or password in the URL (a password with @, : or / must be "
        "percent-encoded)",
        lasting=True,
    ),
    _Rule(
        r"role " + _QUOTED + r" does not exist",
        'the server has no role "{0}"',
        "correct the user in the URL, or create the role",
        lasting=True,
    ),
    _Rule(
        r"no pg_hba\.conf entry",
        "the server's pg_hba.conf has no entry allowing this host, user and database",
        "ask the database's administrator to allow it, or correct the user or database",
        lasting=True,
    ),
    _Rule(
        r"too many clients|remaining connection slots",
        "the server has no free connection slots",
        "retry in a moment; if it persists, look for sessions holding connections",
        lasting=False,
    ),
    _Rule(
        r"the database system is (starting up|shutting down|in recovery mode)",
        "the database system is {0}",
        "retry once the server is up",
        lasting=False,
    ),
    _Rule(
        _TERMINATED,
        "the server ended rollbot's session (an administrator or a restart terminated it)",
        "retry; if it happens again, ask who terminates rollbot's sessions",
        lasting=False,
    ),
)


def denied_object(message: str) -> tuple[str, str] | None:
    """(kind, name) from PostgreSQL's `permission denied for table t`."""
    match = _DENIED.search(message.strip())
    return (match["kind"], match["name"]) if match else None


def privilege_error(
    where: str,
    message: str,
    *,
    role: str,
    kind: str,
    objects: list[str],
    privileges: str,
    needed_for: str,
    also: str = "",
) -> PrivilegeError:
    """A refused read or write, with the GRANT that allows it.

    `objects` are the qualified names PostgreSQL refused (its message names a table without
    its schema); `privileges` what the failed step needs on them.
    """
    names = ", ".join(objects)
    if kind == "schema":
        grant = f"GRANT {privileges} ON SCHEMA {names} TO {role};"
    elif kind == "database":
        grant = f"GRANT {privileges} ON DATABASE {names} TO {role};"
    elif kind == "sequence":
        grant = f"GRANT {privileges} ON SEQUENCE {names} TO {role};"
    else:
        grant = f"GRANT {privileges} ON {names} TO {role};"
    return PrivilegeError(
        f"{where}: role {role} lacks {privileges} on {kind} {names}",
        why=f"PostgreSQL said: {message}; {needed_for}",
        todo=f"grant it, e.g. `{grant}`{also}, then try again; nothing was changed",
        grant=grant,
    )
