"""What libpq and PostgreSQL say, turned into the cause and the fix, never the password."""

import pytest

from bot.core.dbfailures import connection_cause, denied_object, privilege_error

PASSWORD = "pa%zzword"


@pytest.mark.parametrize(
    ("said", "cause", "lasting"),
    [
        ('connection is bad: invalid port number: "99999"', 'port "99999"', True),
        ('invalid integer value "5x" for connection option "port"', 'port "5x"', True),
        ('invalid URI query parameter: "foo"', 'parameter "foo"', True),
        (
            "failed to resolve host 'db.invalid': [Errno -2]",
            '"db.invalid" cannot be resolved',
            False,
        ),
        (
            'connection to server at "127.0.0.1", port 1 failed: Connection refused',
            "127.0.0.1, port 1 (connection refused)",
            False,
        ),
        ('failed: FATAL:  database "app" does not exist', 'no database "app"', True),
        ('FATAL:  password authentication failed for user "rb"', 'password of user "rb"', True),
        ('FATAL:  role "rb" does not exist', 'no role "rb"', True),
        ("terminating connection due to administrator command", "ended rollbot's session", False),
        ("something new", "PostgreSQL's client said: something new", False),
    ],
)
def test_each_known_connection_failure_names_its_cause(
    said: str, cause: str, lasting: bool
) -> None:
    """Each message libpq gives for a known cause is named, and marked lasting or not."""
    found = connection_cause(said)
    assert cause in found.why
    assert found.lasting is lasting


@pytest.mark.parametrize(
    ("url", "part"),
    [
        (f"postgresql://rb:{PASSWORD}@db/app", "password"),
        ("postgresql://r%b:pw@db/app", "user name"),
        ("postgresql://rb:pw@db/a%pp", "database name"),
    ],
)
def test_a_bad_percent_encoding_names_the_part_of_the_url_not_its_text(url: str, part: str) -> None:
    """Which part holds the bad escape is said; the token (maybe the password) is not."""
    found = connection_cause('invalid percent-encoded token: "***"', url)
    assert f"the {part} in its URL" in found.why
    assert PASSWORD not in found.why + found.todo


def test_a_refused_read_becomes_the_grant_that_allows_it() -> None:
    """A refused table read becomes its qualified name, the privilege and the GRANT."""
    assert denied_object("permission denied for table t") == ("table", "t")
    assert denied_object("permission denied for schema drizzle") == ("schema", "drizzle")
    error = privilege_error(
        "Target default",
        "permission denied for table t",
        role="rollbot",
        kind="table",
        objects=["public.t"],
        privileges="SELECT",
        needed_for="planning counts rows",
    )
    assert error.grant == "GRANT SELECT ON public.t TO rollbot;"
    assert "Target default: role rollbot lacks SELECT on table public.t" in error.render()
    assert "nothing was changed" in error.render()
