"""Splitting a connection string so the password never reaches a child's argv."""

import pytest

from bot.core.errors import BackupError
from bot.pgclient.conninfo import child_connection, public_conninfo

SECRET = "p@ss w0rd"


def test_password_goes_to_the_environment_only() -> None:
    """The password leaves --dbname and arrives as PGPASSWORD; the app name is set both ways."""
    child = child_connection(
        f"host=db port=6432 dbname=app user=bot password='{SECRET}'", "rollbot", {"PATH": "/bin"}
    )
    assert "p@ss" not in child.dbname_arg
    assert "application_name=rollbot" in child.dbname_arg
    assert "host=db" in child.dbname_arg
    assert child.env == {"PATH": "/bin", "PGAPPNAME": "rollbot", "PGPASSWORD": SECRET}
    assert child.where == 'database "app" on db:6432'
    assert child.secrets == [SECRET]


def test_uri_passwords_are_decoded_and_removed() -> None:
    """A percent-encoded password in a URI is decoded for the child and kept out of argv."""
    child = child_connection("postgresql://bot:p%40ss%20w0rd@db/app", "rb", {})
    assert child.env["PGPASSWORD"] == SECRET
    assert "p%40ss" not in child.dbname_arg
    assert "p@ss" not in child.dbname_arg


def test_inherited_pgpassword_is_kept_and_redacted() -> None:
    """Without a password in the string the inherited PGPASSWORD is used, and still hidden."""
    child = child_connection("host=db dbname=app", "rollbot", {"PGPASSWORD": "from-env"})
    assert child.env["PGPASSWORD"] == "from-env"
    assert child.secrets == ["from-env"]


def test_password_in_the_database_name_is_not_shown() -> None:
    """Even a database name containing the password is redacted in the description."""
    child = child_connection("dbname=x_hunter2 password=hunter2", "rollbot", {})
    assert child.where == 'database "x_***" on local socket:5432'


def test_sslpassword_is_refused() -> None:
    """A key passphrase could only go on the command line, so it is refused."""
    with pytest.raises(BackupError, match="sslpassword"):
        child_connection("host=db sslpassword=secret", "rollbot", {})


def test_unparsable_string_is_refused_without_quoting_it() -> None:
    """A malformed connection string gives an error that does not echo its contents."""
    with pytest.raises(BackupError) as caught:
        child_connection("host=db password=hunter2 broken", "rollbot", {})
    assert "hunter2" not in caught.value.render()
    assert caught.value.__cause__ is None


def test_public_conninfo_drops_secrets() -> None:
    """The shown form keeps host, user and database but no password."""
    shown = public_conninfo("postgresql://bot:hunter2@db:5433/app")
    assert "hunter2" not in shown
    assert "dbname=app" in shown
    assert "port=5433" in shown
