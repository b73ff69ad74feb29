"""Named targets: staging, production, per-region databases, each with its own rules.

`ROLLBOT_TARGETS` is either inline (`staging=postgresql://…,production=postgresql://…`) or
`@/path/to/targets.yaml`, a file a secrets manager can write, which may also carry per-target
approvers, required approvals and rehearsal settings. `DATABASE_URL` stays the default target.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from bot.core.errors import NotFoundError
from bot.core.redact import redact

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_INLINE_SPLIT = re.compile(r",\s*(?=[a-z0-9][a-z0-9_-]{0,62}\s*=\s*[a-z]+://)")
DEFAULT = "default"
Rehearsal = Literal["off", "schema", "affected", "all"]


class TargetConfig(BaseModel):
    """One database rollbot may roll back, and who decides there."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    url: SecretStr
    approvers: tuple[str, ...] | None = None  # None: ROLLBOT_APPROVERS
    required_approvals: int | None = Field(default=None, ge=1, le=10)
    rehearsal: Rehearsal | None = None  # None: ROLLBOT_REHEARSAL


class TargetsError(ValueError):
    """ROLLBOT_TARGETS cannot be read; the message says where and what to write.

    The message may quote what was written, which holds connection strings: their passwords
    are masked here, once, whichever check failed.
    """

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))


def parse_targets(value: str) -> tuple[TargetConfig, ...]:
    """Read ROLLBOT_TARGETS: inline `name=url,…`, or `@file` holding YAML."""
    text = value.strip()
    if not text:
        return ()
    if text.startswith("@"):
        return _from_file(text[1:])
    targets = []
    for entry in _INLINE_SPLIT.split(text):
        name, sep, url = entry.partition("=")
        name = name.strip()
        if not sep or not url.strip():
            msg = f"{entry.split('=')[0]!r}: write entries as name=postgresql://…, comma-separated"
            raise TargetsError(msg)
        targets.append(_target({"name": name, "url": url.strip()}))
    return _unique(targets)


def _from_file(path: str) -> tuple[TargetConfig, ...]:
    # Only a targets file needs a YAML parser: every command reads the settings, few a file.
    import yaml  # noqa: PLC0415

    try:
        with open(path, encoding="utf-8") as handle:  # noqa: PTH123 - a path from the environment
            data = yaml.safe_load(handle) or {}
    except OSError as exc:
        msg = f"cannot read {path}: {exc.strerror}"
        raise TargetsError(msg) from exc
    except yaml.YAMLError as exc:
        msg = f"{path} is not valid YAML ({exc})"
        raise TargetsError(msg) from exc
    if not isinstance(data, dict):
        msg = f"{path} must map target names to their settings (staging: {{url: …}})"
        raise TargetsError(msg)
    targets = []
    for name, options in data.items():
        fields = {"url": options} if isinstance(options, str) else dict(options or {})
        targets.append(_target({"name": str(name), **fields}))
    return _unique(targets)


def _target(fields: dict[str, object]) -> TargetConfig:
    name = str(fields.get("name", ""))
    if not NAME.match(name) or name == DEFAULT:
        msg = f"{name!r} is not a target name (lower-case letters, digits, - and _; not 'default')"
        raise TargetsError(msg)
    try:
        return TargetConfig.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        msg = f"target {name}: {problems}"
        raise TargetsError(msg) from None


def _unique(targets: list[TargetConfig]) -> tuple[TargetConfig, ...]:
    seen: set[str] = set()
    for target in targets:
        if target.name in seen:
            msg = f"target {target.name} is defined twice"
            raise TargetsError(msg)
        seen.add(target.name)
    return tuple(targets)


def choose(targets: dict[str, TargetConfig], name: str | None) -> TargetConfig:
    """The named target, or the default one; an unknown name lists the known ones."""
    known = ", ".join(sorted(targets)) or "none"
    if name is None:
        if DEFAULT in targets:
            return targets[DEFAULT]
        if len(targets) == 1:
            return next(iter(targets.values()))
        raise NotFoundError(
            "Which target?",
            why=f"there is no DATABASE_URL and several targets: {known}",
            todo="add --target NAME",
        )
    if name not in targets:
        raise NotFoundError(f"Unknown target '{name}'", todo=f"known targets: {known}")
    return targets[name]
