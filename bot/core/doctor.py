"""`rollbot doctor`: whether this rollbot could do its job, one check per line.

A rollback at 3 a.m. is the worst moment to learn that the role cannot drop the table, that
pg_dump is older than the server or that Slack never let rollbot into the incident channel.
The adapters read facts (a catalog, a folder, a token's scopes) without changing anything;
the decisions, each with what to do about it, are made here, purely, so they are tested
without a server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict

from bot.core.dbfailures import privilege_error
from bot.core.sql import ObjectKind
from bot.core.texts import size

if TYPE_CHECKING:
    from bot.core.library import RunbookLibrary

Level = Literal["ok", "warning", "error"]
LEVELS: tuple[Level, ...] = ("ok", "warning", "error")


class Check(BaseModel):
    """One thing looked at: how it stands, what was found and, unless ok, what to do."""

    model_config = ConfigDict(frozen=True)

    level: Level
    subject: str  # "target default", "state database", "slack", "runbooks"
    name: str  # "reachable", "pg_dump", "drop public.api_errors"
    message: str
    todo: str = ""


def ok(subject: str, name: str, message: str) -> Check:
    """A check that passed."""
    return Check(level="ok", subject=subject, name=name, message=message)


def warning(subject: str, name: str, message: str, todo: str) -> Check:
    """Something rollbot works without, but worse (or that someone should look at)."""
    return Check(level="warning", subject=subject, name=name, message=message, todo=todo)


def error(subject: str, name: str, message: str, todo: str) -> Check:
    """Something that stops a rollback (or its announcement) when it is needed."""
    return Check(level="error", subject=subject, name=name, message=message, todo=todo)


class Report(BaseModel):
    """Every check, in the order they were made."""

    model_config = ConfigDict(frozen=True)

    checks: tuple[Check, ...]

    def count(self, level: Level) -> int:
        """How many checks stand at `level`."""
        return sum(1 for c in self.checks if c.level == level)

    @property
    def healthy(self) -> bool:
        """No error: warnings are for a person to read, not a reason to stop."""
        return self.count("error") == 0

    def exit_status(self) -> int:
        """0 with only ok and warnings, 1 with any error: scripts and CI gate on it."""
        return 0 if self.healthy else 1

    def summary(self) -> str:
        """`12 ok, 1 warning, 2 errors`."""
        parts = []
        for level in LEVELS:
            n = self.count(level)
            noun = {"ok": "ok", "warning": "warning", "error": "error"}[level]
            parts.append(f"{n} {noun}" + ("s" if n != 1 and level != "ok" else ""))
        return ", ".join(parts)


# -- what the target adapter reads: facts only, no decision ----------------------------------


class TableAccess(BaseModel):
    """What rollbot's role may do to one table a runbook changes."""

    model_config = ConfigDict(frozen=True)

    table: str  # qualified and quoted as SQL needs it: public.api_errors
    runbooks: tuple[str, ...]  # the runbooks that change it
    owner: str  # quoted role name
    owns: bool  # owner, a member of the owner (inheriting), or superuser: may DROP and ALTER
    select: bool  # the plan counts its rows, pg_dump reads them
    lock: bool  # UPDATE, DELETE or TRUNCATE: LOCK TABLE … IN ACCESS EXCLUSIVE MODE
    schema_usage: bool
    owner_superuser: bool = False  # membership of such an owner would make rollbot one


class RoleFacts(BaseModel):
    """rollbot's role on one server and database, as the catalog describes it."""

    model_config = ConfigDict(frozen=True)

    role: str  # quoted, as a GRANT needs it
    database: str  # quoted
    server_version: str
    server_major: int
    superuser: bool
    createdb: bool
    createrole: bool
    advisory_locks: bool  # may execute pg_try_advisory_xact_lock(int, int)
    database_size: int  # bytes, pg_database_size
    unreadable: tuple[str, ...] = ()  # tables pg_dump could not read (no SELECT), first few
    unreadable_count: int = 0


class StateFacts(BaseModel):
    """The state database's `rollbot` schema, as rollbot's role may use it."""

    model_config = ConfigDict(frozen=True)

    role: str
    database: str
    schema_exists: bool
    schema_owned: bool  # the role owns it (or inherits from its owner)
    schema_usage: bool
    schema_create: bool
    database_create: bool  # may create the schema on first start
    version: int | None  # the newest of rollbot's own migrations applied there
    tables_writable: bool  # SELECT, INSERT, UPDATE, DELETE on every table in the schema


class BackupDirFacts(BaseModel):
    """Where backups go, looked at with os.access and statvfs (no file written)."""

    model_config = ConfigDict(frozen=True)

    path: str
    exists: bool
    writable: bool  # the directory, or the nearest existing parent rollbot would create it in
    is_dir: bool
    free_bytes: int | None


# -- decisions ---------------------------------------------------------------------------------


def tools_found(subject: str, server: str, tools: str) -> Check:
    """pg_dump/pg_restore at least as new as the server: `tools` is the version found."""
    return ok(subject, "pg_dump", f"pg_dump {tools} can back up PostgreSQL {server}")


def tools_missing(subject: str, what: str, todo: str) -> Check:
    """No usable pg_dump for this server (the discovery's own words say which were found)."""
    return error(subject, "pg_dump", what, todo)


def role_checks(
    subject: str,
    facts: RoleFacts,
    *,
    rehearses: bool,
    scratch: RoleFacts | None = None,
    rehearsal_server: str | None = None,
) -> list[Check]:
    """CREATEDB, CREATEROLE, advisory locks and pg_dump's reads, each with the fix.

    `scratch` is the role on the server scratch copies are made on (ROLLBOT_REHEARSAL_URL),
    when that is not the target's.
    """
    role = facts.role
    on = scratch or facts
    checks: list[Check] = []
    if facts.superuser:
        checks.append(
            warning(
                subject,
                "role",
                f"role {role} is a superuser: it may do anything, even what no runbook should",
                "give rollbot a role of its own (see the README's database role)",
            )
        )
    where = rehearsal_server or "the target's server"
    if not rehearses:
        checks.append(ok(subject, "scratch databases", "rehearsal is off: no CREATEDB needed"))
    elif on.createdb or on.superuser:
        checks.append(
            ok(subject, "scratch databases", f"role {on.role} may create them on {where}")
        )
    else:
        checks.append(
            error(
                subject,
                "scratch databases",
                f"role {on.role} lacks CREATEDB on {where}: the rehearsal and the proof "
                "against N-1 cannot make their scratch copies, so plans are not rehearsed",
                f"`ALTER ROLE {on.role} CREATEDB;`, or set ROLLBOT_REHEARSAL=off for this target",
            )
        )
    if rehearses and not (on.createrole or on.superuser):
        checks.append(
            warning(
                subject,
                "throwaway role",
                f"role {on.role} lacks CREATEROLE: rehearsals run as {on.role} itself, not as "
                "a role that owns only the scratch copy",
                f"`ALTER ROLE {on.role} CREATEROLE;` (optional)",
            )
        )
    if facts.advisory_locks:
        checks.append(ok(subject, "advisory lock", "one rollback at a time can be enforced"))
    else:
        checks.append(
            error(
                subject,
                "advisory lock",
                f"role {role} may not execute pg_try_advisory_xact_lock(integer, integer), "
                "which keeps two rollbacks of one database apart",
                "`GRANT EXECUTE ON FUNCTION pg_catalog.pg_try_advisory_xact_lock(integer, "
                f"integer) TO {role};`",
            )
        )
    if facts.unreadable_count == 0:
        checks.append(ok(subject, "backup reads", "pg_dump can read every table"))
    else:
        shown = ", ".join(facts.unreadable)
        more = facts.unreadable_count - len(facts.unreadable)
        tail = f" and {more} more" if more > 0 else ""
        grant = (
            f"`GRANT pg_read_all_data TO {role};`"
            if facts.server_major >= 14  # noqa: PLR2004 - the release that added the role
            else f"`GRANT SELECT ON {facts.unreadable[0]} TO {role};` for each"
        )
        checks.append(
            error(
                subject,
                "backup reads",
                f"role {role} cannot read {facts.unreadable_count} table(s): {shown}{tail}; "
                "pg_dump would fail and no plan could be approved",
                grant,
            )
        )
    return checks


def table_checks(subject: str, role: str, tables: list[TableAccess]) -> list[Check]:
    """Per table a runbook changes: schema USAGE, SELECT, ownership (DROP, ALTER) and LOCK."""
    checks: list[Check] = []
    for t in tables:
        which = ", ".join(t.runbooks)
        schema = t.table.rsplit(".", 1)[0] if "." in t.table else "public"
        problems: list[tuple[str, str]] = []
        if not t.schema_usage:
            problems.append(_grant("schema", schema, "USAGE", role, "to reach it"))
        if not t.select:
            problems.append(_grant("table", t.table, "SELECT", role, "to count its rows"))
        if not t.owns:
            what = f"role {role} does not own it (owner {t.owner}), so it may not drop or alter it"
            fix = (
                f"`ALTER TABLE {t.table} OWNER TO app_owner;` for the application's own role "
                f"(owner {t.owner} is a superuser: never make rollbot a member), then "
                f"`GRANT app_owner TO {role};`"
                if t.owner_superuser
                else f"`GRANT {t.owner} TO {role};` (membership of the owner)"
            )
            problems.append((what, fix))
        elif not t.lock:
            problems.append(
                _grant("table", t.table, "UPDATE, DELETE", role, "to lock it for the rollback")
            )
        if not problems:
            checks.append(ok(subject, f"table {t.table}", f"may lock, count and drop it ({which})"))
            continue
        checks.extend(
            error(subject, f"table {t.table}", f"{what} (runbook {which})", todo)
            for what, todo in problems
        )
    return checks


def _grant(kind: str, name: str, privileges: str, role: str, why: str) -> tuple[str, str]:
    """The problem and its GRANT, worded by the same rule every refused privilege uses."""
    refused = privilege_error(
        "", "", role=role, kind=kind, objects=[name], privileges=privileges, needed_for=why
    )
    return f"role {role} lacks {privileges} on {kind} {name}, {why}", f"`{refused.grant}`"


def state_checks(subject: str, variable: str, facts: StateFacts, latest: int) -> list[Check]:
    """The `rollbot` schema: there (or creatable at start), usable, writable, up to date."""
    role, schema = facts.role, "rollbot"
    if not facts.schema_exists:
        if facts.database_create:
            return [
                ok(
                    subject,
                    "rollbot schema",
                    f"not created yet; role {role} may create it (rollbot does on first use)",
                )
            ]
        refused = privilege_error(
            "", "", role=role, kind="database", objects=[facts.database], privileges="CREATE",
            needed_for="",
        )  # fmt: skip
        return [
            error(
                subject,
                "rollbot schema",
                f"schema {schema} does not exist in {variable}'s database and role {role} may "
                "not create it",
                f"`{refused.grant}`, or `CREATE SCHEMA {schema} AUTHORIZATION {role};`",
            )
        ]
    checks: list[Check] = []
    if not (facts.schema_owned or (facts.schema_usage and facts.schema_create)):
        checks.append(
            error(
                subject,
                "rollbot schema",
                f"role {role} lacks USAGE, CREATE on schema {schema}",
                f"`GRANT USAGE, CREATE ON SCHEMA {schema} TO {role};`",
            )
        )
    elif not facts.tables_writable:
        checks.append(
            error(
                subject,
                "rollbot schema",
                f"role {role} may not read and write every table in schema {schema}",
                f"`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO "
                f"{role};` and `GRANT USAGE ON ALL SEQUENCES IN SCHEMA {schema} TO {role};`",
            )
        )
    else:
        checks.append(ok(subject, "rollbot schema", f"role {role} may read and write it"))
    if facts.version is not None and facts.version > latest:
        checks.append(
            error(
                subject,
                "schema version",
                f"schema {schema} is at version {facts.version}, newer than this rollbot "
                f"knows ({latest})",
                "run the rollbot release that wrote it, or a newer one",
            )
        )
    elif facts.version is None or facts.version < latest:
        checks.append(
            ok(
                subject,
                "schema version",
                f"version {facts.version or 0} of {latest}; rollbot upgrades it on first use",
            )
        )
    else:
        checks.append(ok(subject, "schema version", f"version {latest}, up to date"))
    return checks


def backup_dir_check(facts: BackupDirFacts, sizes: dict[str, int]) -> Check:
    """Writable, and room for the largest target's dump (a dump is at most about its size)."""
    subject = "backups"
    if facts.exists and not facts.is_dir:
        return error(
            subject,
            "directory",
            f"{facts.path} exists and is not a directory",
            "point ROLLBOT_BACKUP_DIR at a directory",
        )
    if not facts.writable:
        where = facts.path if facts.exists else f"the parent of {facts.path}"
        return error(
            subject,
            "directory",
            f"{where} is not writable by this process: no backup, no approval",
            "make it writable by rollbot's user, or point ROLLBOT_BACKUP_DIR elsewhere",
        )
    if facts.free_bytes is None or not sizes:
        return ok(subject, "directory", f"{facts.path} is writable")
    name, largest = max(sizes.items(), key=lambda item: item[1])
    free = size(facts.free_bytes)
    if facts.free_bytes < largest:
        return error(
            subject,
            "free space",
            f"{free} free in {facts.path}, less than target {name}'s {size(largest)}: a full "
            "backup may not fit",
            "free space or point ROLLBOT_BACKUP_DIR at a larger disk",
        )
    if facts.free_bytes < 2 * largest:
        return warning(
            subject,
            "free space",
            f"{free} free in {facts.path}: room for one backup of target {name} "
            f"({size(largest)}), not two",
            "free space, or remove backups that are no longer needed",
        )
    return ok(
        subject, "free space", f"{free} free in {facts.path} (largest target {size(largest)})"
    )


def scope_checks(granted: frozenset[str] | None, needed: frozenset[str]) -> list[Check]:
    """The token's scopes (Slack's `x-oauth-scopes`) against the manifest's."""
    subject = "slack"
    if granted is None:
        return [
            warning(
                subject,
                "scopes",
                "Slack did not say which scopes the token has (no x-oauth-scopes header)",
                "compare the app's OAuth & Permissions page with slack/manifest.yml",
            )
        ]
    missing = sorted(needed - granted)
    if missing:
        return [
            error(
                subject,
                "scopes",
                f"the bot token lacks the scope{'s' if len(missing) > 1 else ''} "
                f"{', '.join(missing)}",
                "add them under OAuth & Permissions (or update the app from slack/manifest.yml) "
                "and reinstall the app to the workspace",
            )
        ]
    return [ok(subject, "scopes", f"the bot token has every scope rollbot uses ({len(needed)})")]


def runbook_checks(library: RunbookLibrary) -> list[Check]:
    """Every runbook parsed; each broken one named with its reason."""
    subject = "runbooks"
    checks = [
        error(subject, broken.file, broken.error, "fix the runbook (`rollbot runbooks` lists it)")
        for broken in library.broken
    ]
    count = len(library.runbooks)
    checks.insert(
        0,
        ok(subject, "parsed", f"{count} runbook{'' if count == 1 else 's'} in {library.directory}"),
    )
    return checks


def runbook_tables(library: RunbookLibrary) -> dict[str, tuple[str, ...]]:
    """Every table a runbook drops, alters or deletes from, quoted as SQL names it: runbooks."""
    tables: dict[str, set[str]] = {}
    for runbook in library.runbooks:
        for statement in runbook.statements:
            for obj in statement.objects:
                if obj.kind is ObjectKind.TABLE:
                    name = _quoted(obj.namespace, obj.name)
                elif obj.table is not None:
                    name = _quoted(obj.table_namespace, obj.table)
                else:
                    continue
                tables.setdefault(name, set()).add(runbook.name)
    return {name: tuple(sorted(names)) for name, names in sorted(tables.items())}


def _quoted(namespace: str | None, name: str) -> str:
    """The name as written in the runbook, quoted so that `to_regclass` keeps its case."""

    def ident(part: str) -> str:
        return '"' + part.replace('"', '""') + '"'

    return f"{ident(namespace)}.{ident(name)}" if namespace else ident(name)


def unreachable(subject: str, what: str, why: str, todo: str) -> Check:
    """A database that could not be reached: the cause, and nothing else is looked at."""
    return error(subject, "reachable", f"{what}: {why}" if why else what, todo)
