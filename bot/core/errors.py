"""Errors that explain themselves.

Every refusal rollbot gives ends up in front of someone during an incident, so each error
carries what happened, why, and what to do next, and renders itself. Nothing here may hold a
secret: callers pass identifiers and redacted text only.
"""

from __future__ import annotations


class RollbotError(Exception):
    """Base class: a user-facing problem with a reason and a next step."""

    def __init__(self, what: str, *, why: str = "", todo: str = "") -> None:
        super().__init__(what)
        self.what = what
        self.why = why
        self.todo = todo

    def render(self) -> str:
        """One paragraph for a terminal or a chat message."""
        parts = [self.what, self.why, self.todo]
        return " ".join(_sentence(part) for part in parts if part)

    def __str__(self) -> str:
        return self.render()


def quoted(text: str, limit: int = 40) -> str:
    """User input for a message: one line, bounded, inert in Slack.

    Backticks would end a code span, and `<@U…>` / `<!channel>` would ping people: Slack's
    own escaping (&amp; &lt; &gt;) shows them as typed without acting on them.
    """
    flat = " ".join(text.split())
    flat = flat[:limit] + "…" if len(flat) > limit else flat
    flat = flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return "'" + flat.replace("`", "'") + "'"


def _sentence(text: str) -> str:
    """Capitalise a plain first word; leave names like pg_dump or ROLLBOT_PG_BIN alone."""
    text = text.strip().rstrip(".")
    first = text.split(" ", 1)[0]
    if first.isalpha() and first.islower():
        text = text[:1].upper() + text[1:]
    return text if text.endswith(("?", "!")) else text + "."


class ConfigError(RollbotError):
    """A setting is missing or malformed; names the environment variable."""

    def __init__(self, variable: str, problem: str, *, todo: str = "") -> None:
        super().__init__(f"{variable}: {problem}", todo=todo)
        self.variable = variable


class RunbookError(RollbotError):
    """A runbook cannot be used; reported as file, line, what is wrong, what to do."""

    def __init__(self, file: str, line: int | None, problem: str, *, todo: str) -> None:
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {problem}", todo=todo)
        self.file = file
        self.line = line
        self.problem = problem


class NotFoundError(RollbotError):
    """A runbook, run or target that does not exist."""


class NotAllowedError(RollbotError):
    """A person or a state does not permit the action."""


class ConflictError(RollbotError):
    """Someone else moved the run first (a compare-and-set found zero rows)."""


class BackupError(RollbotError):
    """A backup could not be taken or verified; approval stays blocked."""


class LockWaitError(BackupError):
    """A backup gave up waiting for a table lock: another session holds a conflicting one."""


class DatabaseUnavailableError(RollbotError):
    """The target or state database cannot be reached.

    `lasting` when the cause is a wrong setting (a bad URL, no such database, a refused
    password): waiting and retrying, as `serve` does for a server still starting, cannot help.
    """

    def __init__(self, what: str, *, why: str = "", todo: str = "", lasting: bool = False) -> None:
        super().__init__(what, why=why, todo=todo)
        self.lasting = lasting


class PrivilegeError(RollbotError):
    """A database refused rollbot's role a privilege; carries the GRANT that fixes it."""

    def __init__(self, what: str, *, why: str = "", todo: str = "", grant: str = "") -> None:
        super().__init__(what, why=why, todo=todo)
        self.grant = grant


class MigrationFileError(RollbotError):
    """A forward migration file cannot be used as it stands; names the file and line."""

    def __init__(
        self, file: str, line: int | None, problem: str, *, why: str = "", todo: str
    ) -> None:
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {problem}", why=why, todo=todo)
        self.file = file
        self.line = line
        self.problem = problem


class IrreversibleError(MigrationFileError):
    """A migration does something no derived rollback can undo; names the statement that matters.

    That is the first statement that loses data, or else the first that cannot be undone.

    `statement` is the migration's own SQL (shortened, quoted for chat), `reason` says what
    would be lost, and `more` counts the other statements that could not be undone either.
    """

    def __init__(self, file: str, line: int, statement: str, reason: str, *, more: int = 0) -> None:
        problem = f"{quoted(statement, 80)} cannot be undone by a derived rollback: {reason}"
        why = f"{more} other statement{'' if more == 1 else 's'} cannot be undone either"
        super().__init__(
            file,
            line,
            problem,
            why=why if more else "",
            todo="write this rollback runbook by hand and decide what happens to the data: "
            "rollbot will not guess",
        )
        self.statement = statement
        self.reason = reason
        self.more = more
