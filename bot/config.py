"""Configuration: one frozen object built from the environment at start-up, then passed down.

The core never reads `os.environ`. Every error names the variable to fix, because the person
reading it is deploying rollbot, not reading its source.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.core.compression import DEFAULT as COMPRESSION
from bot.core.compression import parse_compression
from bot.core.durations import coerce_timeout, parse_duration
from bot.core.errors import ConfigError
from bot.core.quarantine import DropMode
from bot.core.redact import Redactor
from bot.core.retention import Keep, parse_keep
from bot.core.targets import DEFAULT, Rehearsal, TargetConfig, TargetsError, choose, parse_targets

_SLACK_ID = re.compile(r"^[UWS][A-Z0-9]{2,}$")
_CHANNEL_OR_USER = re.compile(r"^[CGDUW][A-Z0-9]{2,}$")


def _env(name: str, **kwargs: Any) -> Any:  # noqa: ANN401 - pydantic's Field
    return Field(validation_alias=name, **kwargs)


class Settings(BaseSettings):
    """Everything rollbot can be told; names are fixed because deployments rely on them."""

    model_config = SettingsConfigDict(
        frozen=True, extra="ignore", case_sensitive=True, populate_by_name=True
    )

    database_url: SecretStr | None = _env("DATABASE_URL", default=None)
    state_url: SecretStr | None = _env("ROLLBOT_STATE_URL", default=None)
    runbooks_dir: Path = _env("ROLLBOT_RUNBOOKS_DIR", default=Path("runbooks"))
    backup_dir: Path = _env("ROLLBOT_BACKUP_DIR", default=Path("backups"))
    pg_bin: Path | None = _env("ROLLBOT_PG_BIN", default=None)
    # None: keep every backup (`all`); else N rollbacks per target, or an age such as 14d.
    backup_keep: Annotated[Keep | None, NoDecode] = _env("ROLLBOT_BACKUP_KEEP", default=None)
    backup_scope: Literal["affected", "all"] = _env("ROLLBOT_BACKUP_SCOPE", default="affected")
    backup_compression: str = _env("ROLLBOT_BACKUP_COMPRESSION", default=COMPRESSION)
    approvers: Annotated[tuple[str, ...], NoDecode] = _env("ROLLBOT_APPROVERS", default=())
    required_approvals: int = _env("ROLLBOT_REQUIRED_APPROVALS", default=1, ge=1, le=10)
    approval_ttl: timedelta = _env("ROLLBOT_APPROVAL_TTL", default=timedelta(minutes=30))
    # None is `off`: no reminder before the approval window closes.
    approval_reminder: timedelta | None = _env(
        "ROLLBOT_APPROVAL_REMINDER", default=timedelta(minutes=5)
    )
    # Each attempt is cheap (a savepoint, no backup retaken), so it can be short: the
    # application's longest wait behind rollbot is one attempt.
    lock_timeout: timedelta = _env("ROLLBOT_LOCK_TIMEOUT", default=timedelta(milliseconds=200))
    statement_timeout: timedelta = _env("ROLLBOT_STATEMENT_TIMEOUT", default=timedelta(seconds=60))
    lock_retries: int = _env("ROLLBOT_LOCK_RETRIES", default=20, ge=1, le=100)
    lock_retry_delay: timedelta = _env(
        "ROLLBOT_LOCK_RETRY_DELAY", default=timedelta(milliseconds=200)
    )
    drop_mode: DropMode = _env("ROLLBOT_DROP_MODE", default="quarantine")
    quarantine_keep: timedelta = _env("ROLLBOT_QUARANTINE_KEEP", default=timedelta(days=7))
    count_budget: timedelta = _env("ROLLBOT_COUNT_BUDGET", default=timedelta(seconds=2))
    # Parsed once, when the settings are read: a file named with @ is not read again.
    targets_spec: Annotated[tuple[TargetConfig, ...], NoDecode] = _env(
        "ROLLBOT_TARGETS", default=()
    )
    rehearsal: Rehearsal = _env("ROLLBOT_REHEARSAL", default="schema")
    rehearsal_url: SecretStr | None = _env("ROLLBOT_REHEARSAL_URL", default=None)
    migrations_dir: Path | None = _env("ROLLBOT_MIGRATIONS_DIR", default=None)
    drizzle_schema: str = _env("ROLLBOT_DRIZZLE_SCHEMA", default="drizzle")
    drizzle_table: str = _env("ROLLBOT_DRIZZLE_TABLE", default="__drizzle_migrations")
    slack_bot_token: SecretStr | None = _env("SLACK_BOT_TOKEN", default=None)
    slack_signing_secret: SecretStr | None = _env("SLACK_SIGNING_SECRET", default=None)
    slack_app_token: SecretStr | None = _env("SLACK_APP_TOKEN", default=None)
    slack_api_url: str = _env("SLACK_API_URL", default="https://slack.com/api/")
    incident_channel: str | None = _env("ROLLBOT_INCIDENT_CHANNEL", default=None)
    approval_reaction: str = _env("ROLLBOT_APPROVAL_REACTION", default="white_check_mark")
    allowed_channels: Annotated[tuple[str, ...], NoDecode] = _env(
        "ROLLBOT_ALLOWED_CHANNELS", default=()
    )
    requesters: Annotated[tuple[str, ...], NoDecode] = _env("ROLLBOT_REQUESTERS", default=())
    port: int = _env("PORT", default=3000, ge=1, le=65535)
    workers: int = _env("ROLLBOT_WORKERS", default=2, ge=1, le=32)
    queue_size: int = _env("ROLLBOT_QUEUE_SIZE", default=10, ge=1, le=1000)
    connect_timeout: timedelta = _env("ROLLBOT_CONNECT_TIMEOUT", default=timedelta(seconds=10))
    startup_timeout: timedelta = _env("ROLLBOT_STARTUP_TIMEOUT", default=timedelta(seconds=60))
    # A Slack message not accepted this long after it was written is given up (and reported).
    delivery_deadline: timedelta = _env("ROLLBOT_DELIVERY_DEADLINE", default=timedelta(hours=1))
    log_level: str = _env("ROLLBOT_LOG_LEVEL", default="info")
    # Not a setting of rollbot's: libpq (and so pg_dump and psql) reads it from the same
    # environment, so its value is a secret rollbot holds and must never repeat.
    pgpassword: SecretStr | None = _env("PGPASSWORD", default=None)
    _targets: dict[str, TargetConfig] = PrivateAttr(default_factory=dict)

    @field_validator("backup_dir", mode="after")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        """Absolute: each run stores its backups' paths, read later from any directory."""
        return value.expanduser().absolute()

    @field_validator("migrations_dir", mode="before")
    @classmethod
    def _unset_when_empty(cls, value: object) -> object:
        """Empty is unset, not the current folder: the image sets it empty when none is baked in."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("backup_keep", mode="before")
    @classmethod
    def _keep(cls, value: object) -> object:
        """`all`, a number of rollbacks per target, or an age: see bot.core.retention."""
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        return parse_keep(value) if isinstance(value, str) else value

    @field_validator("backup_compression", mode="after")
    @classmethod
    def _compression(cls, value: str) -> str:
        """Checked at start-up, not at the first backup: `gzip:1`, `lz4`, `zstd:3`, `none`."""
        return parse_compression(value).label()

    @field_validator(
        "approval_ttl", "lock_retry_delay", "count_budget", "quarantine_keep", mode="before"
    )
    @classmethod
    def _duration(cls, value: object) -> object:
        return parse_duration(value) if isinstance(value, str | int | float) else value

    @field_validator("approval_reminder", mode="before")
    @classmethod
    def _reminder(cls, value: object) -> object:
        """`off`, or how long before the window closes; 0 is refused, not read as off."""
        if isinstance(value, str) and value.strip().lower() == "off":
            return None
        lead = parse_duration(value) if isinstance(value, str | int | float) else value
        _require(
            not isinstance(lead, timedelta) or lead > timedelta(0),
            f"{value!r} is no time before the window closes; write e.g. 5min, or off for no "
            "reminder",
        )
        return lead

    @field_validator(
        "lock_timeout",
        "statement_timeout",
        "connect_timeout",
        "startup_timeout",
        "delivery_deadline",
        mode="before",
    )
    @classmethod
    def _timeout(cls, value: object) -> object:
        return coerce_timeout(value)

    @field_validator("approvers", "allowed_channels", "requesters", mode="before")
    @classmethod
    def _ids(cls, value: object, info: ValidationInfo) -> object:
        if info.field_name == "approvers":
            return _slack_ids(
                value,
                _SLACK_ID,
                "is not a Slack user ID (U…/W…) or user-group ID (S…); "
                "copy IDs from the member's or group's profile",
            )
        return _slack_ids(
            value, _CHANNEL_OR_USER, "is not a Slack ID (C…/G… for channels, U…/W… for people)"
        )

    @field_validator("incident_channel")
    @classmethod
    def _channel(cls, value: str | None) -> str | None:
        _require(
            value is None or _CHANNEL_OR_USER.match(value),
            f"{value!r} is not a Slack channel ID (C…/G…; copy it from the channel details)",
        )
        return value

    @field_validator("approval_reaction")
    @classmethod
    def _reaction(cls, value: str) -> str:
        name = value.strip().strip(":")
        _require(
            re.fullmatch(r"[a-z0-9_+'-]{1,100}", name),
            f"{value!r} is not an emoji name (e.g. white_check_mark)",
        )
        return name

    @field_validator("slack_api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        _require(re.match(r"^https?://[^\s/]+", value), f"{value!r} is not an http(s) URL")
        return value if value.endswith("/") else value + "/"

    @field_validator("targets_spec", mode="before")
    @classmethod
    def _parse_targets(cls, value: object) -> object:
        """Read the variable (or its file) once, here, so every error names ROLLBOT_TARGETS."""
        if not isinstance(value, str):
            return value
        try:
            return parse_targets(value)
        except TargetsError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        if value.lower() not in {"debug", "info", "warning", "error"}:
            msg = "use debug, info, warning or error"
            raise ValueError(msg)
        return value.lower()

    def model_post_init(self, context: Any, /) -> None:  # noqa: ANN401, ARG002 - pydantic's hook
        """Assemble the targets once: the settings are frozen, so they cannot change later."""
        named: dict[str, TargetConfig] = {}
        if self.database_url is not None:
            named[DEFAULT] = TargetConfig(name=DEFAULT, url=self.database_url)
        named |= {t.name: t for t in self.targets_spec}
        self._targets = named

    def targets(self) -> dict[str, TargetConfig]:
        """Every target by name: `default` from DATABASE_URL, then ROLLBOT_TARGETS."""
        return dict(self._targets)

    def target(self, name: str | None = None) -> TargetConfig:
        """The target a request is for (the default one without a name)."""
        targets = self.targets()
        if not targets:
            raise ConfigError(
                "DATABASE_URL",
                "is not set",
                todo="set it to the database to roll back, e.g. postgresql://rollbot@db/app, "
                "or name several in ROLLBOT_TARGETS (or run `make demo` to try rollbot on an "
                "embedded database)",
            )
        return choose(targets, name)

    def approvers_for(self, target: TargetConfig) -> tuple[str, ...]:
        """Who may approve on a target: its own list, else ROLLBOT_APPROVERS."""
        return target.approvers if target.approvers is not None else self.approvers

    def approvals_for(self, target: TargetConfig) -> int:
        """Distinct approvals a target needs."""
        return target.required_approvals or self.required_approvals

    def reminder_lead(self) -> timedelta | None:
        """How long before expiry approvers are reminded; None when there is no reminder.

        A lead not shorter than the window itself sends none: the call sent when the window
        opened is still fresh then.
        """
        lead = self.approval_reminder
        return lead if lead is not None and lead < self.approval_ttl else None

    def rehearsal_for(self, target: TargetConfig) -> Rehearsal:
        """Whether and how rollbot rehearses on a scratch copy of this target."""
        return target.rehearsal or self.rehearsal

    def state_conninfo(self) -> tuple[str, str]:
        """Where runs are kept, and which variable said so."""
        if self.state_url is not None:
            return self.state_url.get_secret_value(), "ROLLBOT_STATE_URL"
        if self.database_url is None and self.targets_spec:
            raise ConfigError(
                "ROLLBOT_STATE_URL",
                "is not set",
                todo="with ROLLBOT_TARGETS and no DATABASE_URL, name the database that keeps "
                "rollbot's runs",
            )
        return self.target().url.get_secret_value(), "DATABASE_URL"

    def secrets(self) -> tuple[str, ...]:
        """Every secret value this configuration holds: each SecretStr, each target's URL.

        Found by type, not listed by name, so a secret setting added later is covered too.
        """
        held = [getattr(self, name) for name in type(self).model_fields]
        held += [t.url for t in self.targets().values()]
        return tuple(
            v for v in (s.get_secret_value() for s in held if isinstance(s, SecretStr)) if v
        )

    def redactor(self) -> Redactor:
        """What cleans every text rollbot writes out; built once by each entry point."""
        return Redactor(self.secrets())

    def slack_mode(self) -> str:
        """`socket` with an app-level token, else `http`; checks the tokens each mode needs."""
        bot = self.slack_bot_token.get_secret_value() if self.slack_bot_token else ""
        if not bot:
            raise ConfigError(
                "SLACK_BOT_TOKEN",
                "is not set",
                todo="copy the Bot User OAuth Token (xoxb-…) from the app's OAuth & Permissions",
            )
        if not bot.startswith("xoxb-"):
            raise ConfigError("SLACK_BOT_TOKEN", "is not a bot token (it must start with xoxb-)")
        if self.slack_app_token is not None:
            if not self.slack_app_token.get_secret_value().startswith("xapp-"):
                raise ConfigError(
                    "SLACK_APP_TOKEN",
                    "is not an app-level token (it must start with xapp-)",
                    todo="create one with the connections:write scope under Basic Information",
                )
            return "socket"
        if not self.slack_signing_secret or not self.slack_signing_secret.get_secret_value():
            raise ConfigError(
                "SLACK_SIGNING_SECRET",
                "is not set (needed in HTTP mode, when SLACK_APP_TOKEN is not set)",
                todo="copy the Signing Secret from the app's Basic Information page",
            )
        return "http"


def _require(condition: object, complaint: str) -> None:
    """A setting's check: pydantic reports the ValueError with the variable's name."""
    if not condition:
        raise ValueError(complaint)


def _slack_ids(value: object, pattern: re.Pattern[str], complaint: str) -> object:
    """A comma-separated list (or a list) of Slack IDs, each checked against `pattern`."""
    if isinstance(value, str):
        value = tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, list | tuple):
        for item in value:
            _require(pattern.match(str(item)), f"{item!r} {complaint}")
    return value


def load_settings(**overrides: Any) -> Settings:  # noqa: ANN401
    """Read the environment; turn validation errors into one message per bad variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else ""
        variable = _variable(field)
        message = str(error["msg"]).removeprefix("Value error, ")
        raise ConfigError(
            variable, message, todo="fix the variable and start rollbot again"
        ) from exc


def _variable(field: str) -> str:
    info = Settings.model_fields.get(field)
    alias = info.validation_alias if info is not None else None
    return alias if isinstance(alias, str) else field
