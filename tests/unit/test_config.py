"""Configuration errors name the variable; secrets are masked wherever text leaves rollbot."""

import io
import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
import structlog

from bot.config import Settings, load_settings
from bot.core.errors import ConfigError
from bot.core.redact import Redactor, redact, secrets_of
from bot.logs import MaskedStream, configure_logging


def test_defaults_and_durations(monkeypatch: pytest.MonkeyPatch) -> None:
    """Durations accept 3s / 500ms / 30min; approvers are comma-separated Slack IDs."""
    monkeypatch.setenv("ROLLBOT_LOCK_TIMEOUT", "500ms")
    monkeypatch.setenv("ROLLBOT_APPROVERS", "U012ABC, S0GROUP1")
    settings = load_settings()
    assert settings.lock_timeout == timedelta(milliseconds=500)
    assert settings.approval_ttl == timedelta(minutes=30)
    assert settings.approvers == ("U012ABC", "S0GROUP1")


def test_an_empty_migrations_dir_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """ROLLBOT_MIGRATIONS_DIR set empty (an image built without migrations) means no folder."""
    monkeypatch.setenv("ROLLBOT_MIGRATIONS_DIR", " ")
    assert load_settings().migrations_dir is None
    monkeypatch.setenv("ROLLBOT_MIGRATIONS_DIR", "/app/drizzle")
    assert str(load_settings().migrations_dir) == "/app/drizzle"


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("ROLLBOT_APPROVERS", "U012ABC,bob", "'bob' is not a Slack user ID"),
        ("ROLLBOT_LOCK_TIMEOUT", "soon", "is not a duration"),
        ("ROLLBOT_LOCK_TIMEOUT", "0", "PostgreSQL reads 0 as 'wait forever'"),
        ("ROLLBOT_LOCK_TIMEOUT", "0.0004s", "PostgreSQL reads 0 as 'wait forever'"),
        ("ROLLBOT_STATEMENT_TIMEOUT", "0ms", "PostgreSQL reads 0 as 'wait forever'"),
        ("ROLLBOT_CONNECT_TIMEOUT", "0s", "PostgreSQL reads 0 as 'wait forever'"),
        ("ROLLBOT_REQUIRED_APPROVALS", "0", "greater than or equal to 1"),
        ("ROLLBOT_LOG_LEVEL", "loud", "use debug, info"),
    ],
)
def test_bad_values_name_their_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, words: str
) -> None:
    """A malformed setting is reported with the variable to fix and what is wrong."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert caught.value.variable == variable
    assert words in caught.value.render()


def test_missing_database_url_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without DATABASE_URL the error names it and offers the demo."""
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with pytest.raises(ConfigError, match="DATABASE_URL: is not set"):
        load_settings().target()


def test_redact_masks_known_and_credential_shaped_secrets() -> None:
    """Known values, URI passwords, password= pairs and Slack tokens never survive."""
    dsn = "postgresql://rollbot:s3cr%40t@db:5432/app"
    secrets = secrets_of([dsn])
    assert "s3cr@t" in secrets
    text = redact(
        f"connect {dsn} failed; password=hunter2 and s3cr@t, token xoxb-1-2-abc",
        secrets,
    )
    assert text == "connect *** failed; password=*** and ***, token xoxb-***"
    unknown = redact("postgresql://admin:letmein@other/db")
    assert unknown == "postgresql://admin:***@other/db"


def test_logs_are_json_with_run_id_and_no_secret() -> None:
    """Every log line is JSON with a run_id key, and secret values are masked."""
    stream = io.StringIO()
    configure_logging(secrets=["postgresql://u:pw-123@h/db"], stream=stream, json=True)
    structlog.get_logger().info("connecting", dsn="postgresql://u:pw-123@h/db")
    line = json.loads(stream.getvalue())
    assert line["run_id"] is None
    assert "pw-123" not in stream.getvalue()
    assert line["event"] == "connecting"


def test_every_secret_setting_is_registered_however_it_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """URL userinfo, `password=` conninfo, a URL libpq cannot parse, PGPASSWORD and the tokens."""
    monkeypatch.setenv("DATABASE_URL", "postgresql://app:pw-url-1@db/app")
    monkeypatch.setenv("ROLLBOT_STATE_URL", "host=db dbname=rb password='pw kv 2' user=rb")
    monkeypatch.setenv("ROLLBOT_TARGETS", "bad=postgresql://app:pw-bad-3@[db/app")
    monkeypatch.setenv("PGPASSWORD", "pw-env-4")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-tok-5")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "sig-6")
    redactor = load_settings().redactor()
    said = (
        "pw-url-1 / pw kv 2 / libpq: invalid URI app:pw-bad-3@[db / pw-env-4 / tok-5 "
        "xoxb-tok-5 / sig-6"
    )
    assert (
        redactor.text(said) == "*** / *** / libpq: invalid URI app:***@[db / *** / tok-5 *** / ***"
    )


def test_the_known_secrets_alone_leave_sql_as_written() -> None:
    """A plan's SQL keeps `password = $1`; only a known value is masked, and that is detectable."""
    redactor = Redactor(["postgresql://app:pw-9@db/app"])
    sql = "DELETE FROM users WHERE password = 'x'"
    assert redactor.known(sql) == sql
    assert redactor.text(sql) != sql
    assert redactor.holds("... 'pw-9' ...")
    assert not redactor.holds(sql)
    nested = redactor.value({"action": "pw-9", "text": ["pw-9"]}, keep=frozenset({"action"}))
    assert nested == {"action": "pw-9", "text": ["***"]}


def test_the_terminal_stream_masks_what_is_printed() -> None:
    """Whatever the command line prints goes through one masked stream."""
    out = io.StringIO()
    stream = MaskedStream(out, Redactor(["pw-9"]))
    print(json.dumps({"why": "auth pw-9 refused"}), file=stream)
    assert out.getvalue() == '{"why": "auth *** refused"}\n'


def _readme_defaults() -> list[tuple[str, str]]:
    """The Default column of the README's Configuration table and of Slack's, row by row."""
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    tables = (
        readme[readme.index("## Configuration\n") : readme.index("## Drizzle\n")]
        + readme[readme.index("## Slack app setup\n") : readme.index("## Deployment\n")]
    )
    return re.findall(r"^\| `([A-Z_]+)` \| ([^|]*?) \|", tables, re.MULTILINE)


def test_the_readmes_defaults_are_the_settings_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """Setting a variable to the default the README gives it changes nothing; "(none)" is unset."""
    defaults = _readme_defaults()
    assert len(defaults) > 30
    fields = {f.validation_alias: name for name, f in Settings.model_fields.items()}
    for variable, _ in defaults:
        monkeypatch.delenv(variable, raising=False)
    unset = load_settings()
    for variable, default in defaults:
        field = fields[variable]
        literal = re.match(r"`([^`]+)`", default)
        if literal is None or re.fullmatch(r"[A-Z_]+", literal.group(1)):
            # "(none)", "(required …)", "(search)", "the target's server", `DATABASE_URL`:
            # nothing of its own until set.
            assert getattr(unset, field) in (None, ()), variable
            continue
        with monkeypatch.context() as set_to:
            set_to.setenv(variable, literal.group(1))
            assert getattr(load_settings(), field) == getattr(unset, field), variable
