"""`/rollback …` text, parsed: what the person asked for, or why it is not a request.

Slack sends whatever was typed: mentions, quotes, 10 kB of paste, `0023; DROP TABLE users`.
Parsing is strict and pure: anything that is not exactly a known form is refused with the
usage and, where it fits, a "did you mean". Nothing is planned from text that did not parse.
"""

from __future__ import annotations

import difflib
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict

from bot.core.errors import RollbotError, quoted

Action = Literal["plan", "help", "list", "status", "cancel", "history", "restore", "log", "doctor"]
SUBCOMMANDS: tuple[str, ...] = (
    "help",
    "list",
    "status",
    "cancel",
    "history",
    "restore",
    "log",
    "doctor",
)
_MIGRATION = re.compile(r"^\d{1,6}(?:_[A-Za-z0-9_]{1,100})?$")
_RUN = re.compile(r"^#?(\d{1,12})$")
_FLAGS = ("--target", "--after", "--dry-run")
_SWITCHES = ("--dry-run",)  # flags that take no value

USAGE = """\
`/rollback 0023` plan a rollback of migration 0023 (also `23` or `0023_loud_shen`)
`/rollback 0023 --target NAME` the same on a named target
`/rollback 0023 --dry-run` preview its SQL and preflight, to you alone: nothing run or posted
`/rollback 0023 --target NAME --after RUN` promote: RUN did it on another target first
`/rollback list` the runbooks rollbot can run
`/rollback status [RUN]` one run, or the active ones
`/rollback cancel RUN` cancel a run that has not started (requester or an approver)
`/rollback history [--target NAME]` migration history, live from the Drizzle journal
`/rollback restore RUN` put back what rollback run RUN dropped (needs approval too)
`/rollback log RUN` run RUN's audit trail: who did what, when, from where
`/rollback doctor` check rollbot's setup: databases, privileges, tools, Slack (approvers)
`/rollback help` this text"""


class Command(BaseModel):
    """A well-formed request."""

    model_config = ConfigDict(frozen=True)

    action: Action
    migration: str | None = None
    run_id: int | None = None
    target: str | None = None
    after: int | None = None
    dry_run: bool = False  # preview only: no backup, no run, nothing posted to channels


class CommandError(RollbotError):
    """Text that is not a request; carries the usage so the reply can show it."""

    def __init__(self, what: str, *, todo: str = "") -> None:
        super().__init__(what, todo=todo)
        self.usage = USAGE


def parse_command(text: str) -> Command:
    """Parse the text after `/rollback`."""
    words = text.split()
    if not words:
        raise CommandError(
            "Which migration should be rolled back?",
            todo="give its number, e.g. `/rollback 0023`, or `/rollback help`",
        )
    head, rest = words[0].lower(), words[1:]
    if head in SUBCOMMANDS:
        return _subcommand(head, rest)
    if _MIGRATION.match(words[0]):
        return _plan(words[0], rest)
    close = difflib.get_close_matches(head, SUBCOMMANDS, n=1, cutoff=0.6)
    if close:
        raise CommandError(
            f"Unknown subcommand {quoted(words[0])}", todo=f"did you mean `{close[0]}`?"
        )
    raise CommandError(
        f"{quoted(text)} is not a migration id or a subcommand",
        todo="name a migration by its number (0023, 23) or file name (0023_loud_shen)",
    )


def _subcommand(head: str, rest: list[str]) -> Command:
    if head == "history" and rest[:1] == ["--target"]:
        if len(rest) < 2:  # noqa: PLR2004 - the flag and its value
            raise CommandError("`--target` needs a value", todo="see `/rollback help`")
        _no_more(head, rest[2:])
        return Command(action="history", target=_target(rest[1]))
    if head in {"help", "list", "history", "doctor"}:
        _no_more(head, rest)
        return Command.model_validate({"action": head})
    if head == "status":
        if not rest:
            return Command(action="status")
        run_id = _run_id(head, rest[0])
        _no_more(head, rest[1:])
        return Command(action="status", run_id=run_id)
    if not rest:
        raise CommandError(
            f"`{head}` needs a run id", todo=f"e.g. `/rollback {head} 12` (see `/rollback status`)"
        )
    run_id = _run_id(head, rest[0])
    _no_more(head, rest[1:])
    return Command.model_validate({"action": head, "run_id": run_id})


def _plan(migration: str, rest: list[str]) -> Command:
    options: dict[str, str] = {}
    words = iter(rest)
    for word in words:
        flag = word.lower()
        if flag not in _FLAGS:
            close = difflib.get_close_matches(flag, _FLAGS, n=1, cutoff=0.6)
            hint = f"did you mean `{close[0]}`?" if close else "see `/rollback help`"
            raise CommandError(f"Unexpected {quoted(word)} after the migration id", todo=hint)
        if flag in _SWITCHES:
            options[flag] = "yes"
            continue
        value = next(words, None)
        if value is None or value.startswith("--"):
            raise CommandError(f"`{flag}` needs a value", todo="see `/rollback help`")
        options[flag] = value
    target = _target(options["--target"]) if "--target" in options else None
    after = _run_id("--after", options["--after"]) if "--after" in options else None
    dry_run = "--dry-run" in options
    if dry_run and after is not None:
        raise CommandError("`--dry-run` previews a plan; `--after` promotes a run", todo="pick one")
    return Command(action="plan", migration=migration, target=target, after=after, dry_run=dry_run)


def _target(name: str) -> str:
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,62}", name):
        raise CommandError(
            f"{quoted(name)} is not a target name", todo="use a name from ROLLBOT_TARGETS"
        )
    return name


def _run_id(context: str, word: str) -> int:
    match = _RUN.match(word)
    if match is None:
        raise CommandError(
            f"{quoted(word)} is not a run id", todo=f"`{context}` takes a run number, e.g. 12"
        )
    return int(match.group(1))


def _no_more(head: str, rest: list[str]) -> None:
    if rest:
        raise CommandError(
            f"`{head}` takes no {quoted(' '.join(rest))}", todo="see `/rollback help`"
        )
