"""Other sessions' queries are shown with their literals masked, whatever the quoting."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.core.redact import mask_literals, mask_row_values

SECRET = "hunter2-Zq9"


@pytest.mark.parametrize(
    "query",
    [
        f"ALTER ROLE app PASSWORD '{SECRET}'",
        f"ALTER ROLE app PASSWORD E'{SECRET}\\'x'",
        f"ALTER ROLE app PASSWORD $${SECRET}$$",
        f"ALTER ROLE app PASSWORD $tag${SECRET}$tag$",
        f"UPDATE users SET token = U&'{SECRET}' WHERE id = 1",
        f"SELECT 1 -- {SECRET}",
        f"SELECT /* {SECRET} */ 1",
        f"UPDATE users SET token = '{SECRET}' WHERE id = 42 AND (",  # cut short by the server
        f"UPDATE users SET token = '{SECRET}",  # cut inside the literal
        f"INSERT INTO t VALUES (B'1010', X'ff', 3.14, '{SECRET}')",
    ],
)
def test_no_literal_or_comment_survives(query: str) -> None:
    """String, escape, dollar, Unicode, bit and numeric literals and comments are all masked."""
    masked = mask_literals(query)
    assert SECRET not in masked
    assert "hunter2" not in masked


def test_the_shape_of_the_query_stays_readable() -> None:
    """The DBA still sees what the session was doing, as pg_stat_statements would show it."""
    assert mask_literals("UPDATE assets SET name = 'x'\n  WHERE id = 42") == (
        "UPDATE assets SET name = $1 WHERE id = $2"
    )


@given(st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=60))
def test_any_quoted_text_is_masked(secret: str) -> None:
    """Whatever a literal holds, quotes and backslashes included, none of it is shown."""
    quoted = "'" + secret.replace("'", "''") + "'"
    masked = mask_literals(f"ALTER ROLE app PASSWORD {quoted} VALID UNTIL 'infinity'")
    assert masked in {
        "ALTER ROLE app PASSWORD $1 VALID UNTIL $2",
        "(query withheld: it could not be read safely)",
    } or masked.endswith("…(rest withheld)")


@pytest.mark.parametrize(
    ("detail", "shown"),
    [
        (
            "Failing row contains (1, null, sk_live_TOPSECRET_123).",
            "Failing row contains (values withheld).",
        ),
        (
            "Key (email)=(bob@example.com) already exists.",
            "Key (email)=(values withheld) already exists.",
        ),
        (
            'Key (user_id)=(42) is not present in table "users".',
            'Key (user_id)=(values withheld) is not present in table "users".',
        ),
        (
            'Key (a, b)=(1, x)) is still referenced from table "t".',
            'Key (a, b)=(values withheld) is still referenced from table "t".',
        ),
        (
            (
                'Key (during)=(["2020-01-01","2021-01-01")) conflicts with key '
                '(during)=(["2020-06-01","2021-06-01")).'
            ),
            "Key (during)=(values withheld) conflicts with key (during)=(values withheld).",
        ),
        (
            "Key (r)=([1,5)) conflicts with existing key (r)=([2,3)).",
            "Key (r)=(values withheld) conflicts with existing key (r)=(values withheld).",
        ),
        (
            "Process 4242 waits for ShareLock on transaction 7.",
            "Process 4242 waits for ShareLock on transaction 7.",
        ),
    ],
)
def test_the_rows_an_error_quotes_are_withheld_and_its_columns_kept(
    detail: str, shown: str
) -> None:
    assert mask_row_values(detail) == shown
