"""The example compose.yaml, read as Compose reads it: a Drizzle deployment that starts right."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.config import Settings
from tests.dockerfile import load

COMPOSE = Path(__file__).parents[2] / "compose.yaml"
# What a Drizzle deployment cannot start without (Socket Mode, the example's mode).
NEEDED = {
    "DATABASE_URL",
    "SLACK_BOT_TOKEN",
    "SLACK_APP_TOKEN",
    "ROLLBOT_APPROVERS",
    "ROLLBOT_INCIDENT_CHANNEL",
    "ROLLBOT_RUNBOOKS_DIR",
    "ROLLBOT_MIGRATIONS_DIR",
    "ROLLBOT_BACKUP_DIR",
}
SECRETS = {"SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET", "PGPASSWORD"}
# A value Compose fills in from the environment or .env, refusing to start when it is unset.
_REQUIRED_FROM_ENV = re.compile(r"^\$\{(\w+):\?[^}]+\}$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return loaded


def _bot(compose: dict[str, Any]) -> dict[str, Any]:
    service: dict[str, Any] = compose["services"]["rollbot"]
    return service


def test_every_variable_is_a_setting_and_none_is_missing(compose: dict[str, Any]) -> None:
    """The bot's environment names only rollbot's settings, and every one a deployment needs."""
    env: dict[str, str] = _bot(compose)["environment"]
    known = {f.validation_alias for f in Settings.model_fields.values() if f.validation_alias}
    assert [name for name in env if name not in known] == []
    assert NEEDED - env.keys() == set()


def test_secrets_come_from_the_environment_not_the_file(compose: dict[str, Any]) -> None:
    """Tokens and passwords are `${NAME:?…}` references, and DATABASE_URL carries no password."""
    env: dict[str, str] = _bot(compose)["environment"]
    for name in SECRETS & env.keys():
        assert _REQUIRED_FROM_ENV.match(env[name]), name
    db_env: dict[str, str] = compose["services"]["db"]["environment"]
    assert _REQUIRED_FROM_ENV.match(db_env["POSTGRES_PASSWORD"])
    assert env["PGPASSWORD"] == db_env["POSTGRES_PASSWORD"]
    url = env["DATABASE_URL"]
    assert re.fullmatch(r"postgresql://[\w]+@db:5432/\w+", url), url
    assert url.split("@")[0].removeprefix("postgresql://") == db_env["POSTGRES_USER"]
    assert url.rsplit("/", 1)[1] == db_env["POSTGRES_DB"]
    text = COMPOSE.read_text(encoding="utf-8")
    assert not re.search(r"xox[bpa]-\w|xapp-\w", text)


def test_the_folders_the_settings_name_are_mounted(compose: dict[str, Any]) -> None:
    """Runbooks and migrations are mounted read-only, backups on a named volume, where env says."""
    bot = _bot(compose)
    env: dict[str, str] = bot["environment"]
    mounts = {m["target"]: m for m in bot["volumes"]}
    for name, source in (
        ("ROLLBOT_RUNBOOKS_DIR", "./runbooks"),
        ("ROLLBOT_MIGRATIONS_DIR", "${MIGRATIONS_PATH:-./drizzle}"),
    ):
        mount = mounts[env[name]]
        assert (mount["type"], mount["source"], mount["read_only"]) == ("bind", source, True)
    backups = mounts[env["ROLLBOT_BACKUP_DIR"]]
    assert backups["type"] == "volume"
    assert not backups.get("read_only", False)
    assert backups["source"] in compose["volumes"]
    # The image's own backup volume, so a new named volume takes its owner and mode.
    assert env["ROLLBOT_BACKUP_DIR"] == load().final.last("VOLUME").exec_form()[0]


def test_healthcheck_hits_healthz_on_the_port_the_bot_listens_on(compose: dict[str, Any]) -> None:
    """The check GETs /healthz on PORT, bypassing proxies, like the image's own health check."""
    bot = _bot(compose)
    test: list[str] = bot["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    (url,) = re.findall(r"'(http://[^']+)'", test[3])
    assert url == f"http://127.0.0.1:{bot['environment']['PORT']}/healthz"
    assert "ProxyHandler({})" in test[3]
    image_check = load().final.last("HEALTHCHECK").flags()[1]
    assert test[3].replace(":3000/", ":${PORT:-3000}/") in image_check
    assert bot["ports"] == [f"127.0.0.1:{bot['environment']['PORT']}:3000"]


def test_bot_is_built_here_restarts_and_waits_for_a_healthy_database(
    compose: dict[str, Any],
) -> None:
    """The bot comes from this Dockerfile, restarts, and starts once PostgreSQL answers."""
    bot, db = _bot(compose), compose["services"]["db"]
    assert bot["build"] == {"context": "."}
    assert bot["restart"] == db["restart"] == "unless-stopped"
    assert bot["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert re.fullmatch(r"postgres:1[56]", db["image"])
    assert db["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]


def test_readme_shows_the_migrations_ways_the_variables_and_compose() -> None:
    """The Docker section names each needed variable, both ways in for migrations, and Compose."""
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    docker = readme[readme.index("### Docker\n") : readme.index("### Without Docker")]
    for name in NEEDED:
        assert f"`{name}`" in docker, name
    assert "-v /srv/app/drizzle:/app/drizzle:ro -e ROLLBOT_MIGRATIONS_DIR=/app/drizzle" in docker
    assert "docker build --build-arg MIGRATIONS_DIR=drizzle -t rollbot ." in docker
    assert "\ndocker compose up -d\n" in docker
    assert "[`compose.yaml`](compose.yaml)" in docker
    slack = readme[readme.index("## Slack app setup") : readme.index("## Deployment")]
    assert "--build-arg MIGRATIONS_DIR=drizzle" in slack
    assert "docker compose up -d" in slack
