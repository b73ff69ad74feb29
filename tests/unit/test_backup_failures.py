"""pg_dump's stderr turned into errors that say what to do, with secrets taken out."""

import pytest

from bot.core.redact import redact
from bot.pgclient.failures import dump_failure, summarise

WHERE = 'database "app" on db.internal:5432'


def test_redact_hides_plain_and_url_encoded_secrets() -> None:
    """A secret is hidden however the message spells it, and empty secrets change nothing."""
    text = "password p@ss/w0rd or p%40ss%2Fw0rd, user app"
    assert redact(text, ["p@ss/w0rd", ""]) == "password *** or ***, user app"


def test_redact_prefers_the_longest_secret() -> None:
    """Overlapping secrets are hidden whole, not leaving the tail of the longer one."""
    assert redact("abcdef", ["abc", "abcdef"]) == "***"


def test_summarise_strips_prefixes_and_joins_lines() -> None:
    """The tool's prefixes go and the lines read as one sentence."""
    stderr = (
        "pg_dump: error: query failed: ERROR:  permission denied for table users\n"
        "pg_dump: detail: Query was: LOCK TABLE public.users IN ACCESS SHARE MODE\n"
    )
    assert summarise(stderr, "pg_dump") == (
        "query failed: ERROR:  permission denied for table users; "
        "detail: Query was: LOCK TABLE public.users IN ACCESS SHARE MODE"
    )


def test_summarise_caps_long_output() -> None:
    """A flood of output is cut to a readable length."""
    assert len(summarise("x" * 5000, "pg_dump")) == 400
    assert summarise("", "pg_dump") == "no message"


@pytest.mark.parametrize(
    ("stderr", "what"),
    [
        (
            "pg_dump: error: could not write to output file: No space left on device",
            "The disk holding /backups is full",
        ),
        (
            "pg_dump: error: could not open output file: Permission denied",
            "pg_dump could not write the backup into /backups",
        ),
        (
            (
                'pg_dump: error: connection to server at "10.0.0.1", port 5432 failed: '
                "Connection refused"
            ),
            f"pg_dump could not connect to {WHERE}",
        ),
        (
            (
                'pg_dump: error: connection to server at "10.0.0.1", port 5432 failed: FATAL:  '
                'password authentication failed for user "app"'
            ),
            f"{WHERE} refused pg_dump's login",
        ),
        (
            "pg_dump: error: aborting because of server version mismatch",
            f"pg_dump is older than the server of {WHERE}",
        ),
        (
            (
                "pg_dump: error: query failed: ERROR:  invalid snapshot identifier: "
                '"00000003-0000001B-1"'
            ),
            f"The exported snapshot of {WHERE} no longer exists",
        ),
        (
            (
                "pg_dump: error: query failed: ERROR:  canceling statement due to statement "
                "timeout\npg_dump: detail: Query was: LOCK TABLE public.users IN ACCESS SHARE MODE"
            ),
            f"pg_dump gave up waiting for a table lock in {WHERE}",
        ),
        (
            "pg_dump: error: query failed: ERROR:  permission denied for table users",
            f"pg_dump lacks privileges in {WHERE}",
        ),
        ("pg_dump: error: something new", f"pg_dump failed on {WHERE} (exit status 1)"),
    ],
)
def test_dump_failure_names_the_cause(stderr: str, what: str) -> None:
    """Each kind of pg_dump failure gets its own explanation, with the tool's words as why."""
    error = dump_failure(stderr, 1, where=WHERE, directory="/backups")
    assert error.what.startswith(what)
    assert error.why.endswith(summarise(stderr, "pg_dump"))
    assert error.todo


def test_dump_failure_by_signal() -> None:
    """A killed pg_dump is reported as stopped from outside, whatever it printed."""
    error = dump_failure("", -9, where=WHERE, directory="/backups")
    assert error.what == f"pg_dump was stopped by signal 9 while backing up {WHERE}"
