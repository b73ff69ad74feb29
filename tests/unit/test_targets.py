"""Named targets: inline or from a file, per-target rules, unknown names refused with the list."""

from pathlib import Path

import pytest

from bot.config import load_settings
from bot.core.errors import ConfigError, NotFoundError
from bot.core.targets import TargetConfig, parse_targets


def test_inline_targets_and_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """DATABASE_URL is `default`; ROLLBOT_TARGETS adds named ones; passwords stay secret."""
    monkeypatch.setenv("DATABASE_URL", "postgresql://app@db/app")
    monkeypatch.setenv(
        "ROLLBOT_TARGETS",
        "staging=postgresql://u:s3@stage/app, production=postgresql://u:p4@prod/app",
    )
    settings = load_settings()
    assert sorted(settings.targets()) == ["default", "production", "staging"]
    assert settings.target().name == "default"
    assert settings.target("staging").url.get_secret_value() == "postgresql://u:s3@stage/app"
    assert "p4" not in repr(settings.target("production"))
    assert "postgresql://u:p4@prod/app" in settings.secrets()


def test_file_targets_carry_their_own_rules(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A YAML file gives production two approvals and its own approvers."""
    path = tmp_path / "targets.yaml"
    path.write_text(
        "staging: postgresql://u@stage/app\n"
        "production:\n  url: postgresql://u@prod/app\n  required_approvals: 2\n"
        "  approvers: [U0DBA1, U0DBA2]\n  rehearsal: all\n"
    )
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("ROLLBOT_TARGETS", f"@{path}")
    monkeypatch.setenv("ROLLBOT_APPROVERS", "U0ANY")
    settings = load_settings()
    production, staging = settings.target("production"), settings.target("staging")
    assert (settings.approvals_for(production), settings.approvals_for(staging)) == (2, 1)
    assert settings.approvers_for(production) == ("U0DBA1", "U0DBA2")
    assert settings.approvers_for(staging) == ("U0ANY",)
    assert (settings.rehearsal_for(production), settings.rehearsal_for(staging)) == (
        "all",
        "schema",
    )


def test_unknown_target_lists_the_known_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unknown name is refused with the names rollbot knows."""
    monkeypatch.setenv("ROLLBOT_TARGETS", "staging=postgresql://s/a,production=postgresql://p/a")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    settings = load_settings()
    with pytest.raises(NotFoundError, match="Known targets: production, staging"):
        settings.target("prod")
    with pytest.raises(NotFoundError, match="Add --target NAME"):
        settings.target()


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("staging", "write entries as name=postgresql"),
        ("Staging=postgresql://x/y", "is not a target name"),
        ("a=postgresql://x/y,a=postgresql://z/y", "defined twice"),
        ("@/nonexistent/targets.yaml", "cannot read /nonexistent/targets.yaml"),
    ],
)
def test_bad_targets_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str, words: str
) -> None:
    """A malformed ROLLBOT_TARGETS stops rollbot, naming the variable and the problem."""
    monkeypatch.setenv("ROLLBOT_TARGETS", value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert caught.value.variable == "ROLLBOT_TARGETS"
    assert words in caught.value.render()


def test_state_needs_a_home_without_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """With only named targets, ROLLBOT_STATE_URL must say where runs are kept."""
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("ROLLBOT_STATE_URL", raising=False)
    monkeypatch.setenv("ROLLBOT_TARGETS", "staging=postgresql://s/a")
    with pytest.raises(ConfigError, match="ROLLBOT_STATE_URL"):
        load_settings().state_conninfo()


def test_targets_are_read_once_when_the_settings_are(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """ROLLBOT_TARGETS (and the file it names) is parsed at start-up, not on every request."""
    path = tmp_path / "targets.yaml"
    path.write_text("staging: postgresql://u@stage/app\nproduction: postgresql://u@prod/app\n")
    monkeypatch.setenv("DATABASE_URL", "postgresql://app@db/app")
    monkeypatch.setenv("ROLLBOT_TARGETS", f"@{path}")
    parsed: list[str] = []

    def counting(value: str) -> tuple[TargetConfig, ...]:
        parsed.append(value)
        return parse_targets(value)

    monkeypatch.setattr("bot.config.parse_targets", counting)
    settings = load_settings()
    path.unlink()  # a later read would fail: there must be none
    for _ in range(3):
        assert sorted(settings.targets()) == ["default", "production", "staging"]
        assert settings.target("staging").url.get_secret_value() == "postgresql://u@stage/app"
        assert "postgresql://u@prod/app" in settings.secrets()
    assert parsed == [f"@{path}"]


@pytest.mark.parametrize(
    "value",
    [
        "staging postgresql://u:Sup3rSecret@127.0.0.1/db",  # no '=': the entry is quoted
        "staging postgresql://u:Sup3rSecret@h/db?sslmode=require",  # '=' inside the URL
    ],
)
def test_a_malformed_target_is_refused_without_quoting_its_password(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    """The refusal quotes what was written, to say where it is wrong, with the password masked."""
    monkeypatch.setenv("ROLLBOT_TARGETS", value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "Sup3rSecret" not in caught.value.render()
    assert "u:***@" in caught.value.render()


def test_a_yaml_file_that_does_not_parse_is_refused_without_quoting_its_password(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """YAML's own error quotes the line it stopped at: a URL with its password."""
    file = tmp_path / "targets.yaml"
    file.write_text("staging:\n  url: postgresql://u:Sup3rSecret@h/db\n  approvers: [U1\n")
    monkeypatch.setenv("ROLLBOT_TARGETS", f"@{file}")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "is not valid YAML" in caught.value.render()
    assert "Sup3rSecret" not in caught.value.render()
