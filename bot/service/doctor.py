"""`rollbot doctor`: every target, the state database, the runbooks and the backup directory.

Each part is looked at on its own, so one unreachable database does not hide what is wrong
elsewhere; a database that cannot be reached is one error with its cause, and nothing more is
asked of it. Nothing is changed anywhere: no schema, no run, no file. Slack's checks come from
the caller (the service does not know Slack exists), through `more`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from bot.core.doctor import (
    Check,
    Report,
    RoleFacts,
    backup_dir_check,
    error,
    ok,
    role_checks,
    runbook_checks,
    runbook_tables,
    state_checks,
    table_checks,
    tools_found,
    unreachable,
)
from bot.core.errors import DatabaseUnavailableError, RollbotError
from bot.core.library import load_library
from bot.drizzle.folder import read_migrations
from bot.drizzle.journal import journal_checks
from bot.service.planner import rehearsal_database, target_databases
from bot.state.doctor import LATEST, state_facts
from bot.state.store import STATE_SCHEMA
from bot.target.doctor import backup_dir_facts, examine, server_facts

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from bot.config import Settings
    from bot.drizzle.folder import Migration
    from bot.target.database import TargetDatabase

log = structlog.get_logger()


class Doctor:
    """Looks at everything a rollback will need, and says what to do about each gap."""

    def __init__(
        self,
        settings: Settings,
        databases: Mapping[str, TargetDatabase],
        rehearsal_server: TargetDatabase | None = None,
    ) -> None:
        self.settings = settings
        self.databases = databases
        self.rehearsal_server = rehearsal_server

    @classmethod
    def of(cls, settings: Settings) -> Doctor:
        """A doctor for the configured targets, built as the planner builds them."""
        return cls(settings, target_databases(settings), rehearsal_database(settings))

    def examine(self, more: Callable[[], list[Check]] | None = None) -> Report:
        """The whole report: runbooks, targets, state database, backups, then `more`."""
        checks: list[Check] = []
        tables: dict[str, tuple[str, ...]] = {}
        try:
            library = load_library(self.settings.runbooks_dir)
        except RollbotError as exc:
            checks.append(error("runbooks", "directory", exc.what, exc.todo))
        else:
            checks += runbook_checks(library)
            tables = runbook_tables(library)
        migrations, folder_checks = self._migrations()
        checks += folder_checks
        scratch = self._scratch(checks)
        sizes: dict[str, int] = {}
        for name, db in self.databases.items():
            checks += self._target(
                name=name, db=db, tables=tables, migrations=migrations, scratch=scratch, sizes=sizes
            )
        checks += self._state()
        checks.append(backup_dir_check(backup_dir_facts(self.settings.backup_dir), sizes))
        if more is not None:
            checks += more()
        return Report(checks=tuple(checks))

    def _migrations(self) -> tuple[list[Migration] | None, list[Check]]:
        folder = self.settings.migrations_dir
        if folder is None:
            return None, []
        try:
            migrations = read_migrations(folder)
        except RollbotError as exc:
            return None, [error("migrations", "folder", exc.what, exc.todo or exc.why)]
        return migrations, [ok("migrations", "folder", f"{len(migrations)} migrations in {folder}")]

    def _scratch(self, checks: list[Check]) -> RoleFacts | None:
        """The role on ROLLBOT_REHEARSAL_URL's server, when scratch copies are made there."""
        if self.rehearsal_server is None:
            return None
        subject = "rehearsal server"
        try:
            facts = server_facts(self.rehearsal_server)
        except DatabaseUnavailableError as exc:
            checks.append(unreachable(subject, exc.what, exc.why, exc.todo))
            return None
        checks.append(
            ok(subject, "reachable", f"PostgreSQL {facts.server_version} as role {facts.role}")
        )
        return facts

    def _target(
        self,
        *,
        name: str,
        db: TargetDatabase,
        tables: dict[str, tuple[str, ...]],
        migrations: list[Migration] | None,
        scratch: RoleFacts | None,
        sizes: dict[str, int],
    ) -> list[Check]:
        subject = f"target {name}"
        try:
            found = examine(db, tables, exclude=(STATE_SCHEMA,))
        except DatabaseUnavailableError as exc:
            return [unreachable(subject, exc.what, exc.why, exc.todo)]
        role = found.role
        sizes[name] = role.database_size
        checks = [
            ok(
                subject,
                "reachable",
                f"PostgreSQL {role.server_version}, database {role.database} as role {role.role}",
            )
        ]
        if found.tools is not None:
            checks.append(tools_found(subject, role.server_version, found.tools))
        elif found.tools_problem is not None:
            missing = found.tools_problem
            checks.append(error(subject, "pg_dump", missing.what, missing.todo))
        config = self.settings.target(name)
        rehearses = self.settings.rehearsal_for(config) != "off"
        checks += role_checks(
            subject,
            role,
            rehearses=rehearses,
            scratch=scratch,
            rehearsal_server="ROLLBOT_REHEARSAL_URL's server" if scratch else None,
        )
        checks += table_checks(subject, role.role, list(found.tables))
        journal = f"{self.settings.drizzle_schema}.{self.settings.drizzle_table}"
        if found.journal_problem is not None:
            refused = found.journal_problem
            checks.append(error(subject, "journal", refused.what, refused.todo))
        else:
            checks += journal_checks(subject, migrations, found.journal, journal=journal)
        return checks

    def _state(self) -> list[Check]:
        subject = "state database"
        try:
            conninfo, variable = self.settings.state_conninfo()
        except RollbotError as exc:
            return [error(subject, "setting", exc.what, exc.todo)]
        timeout = self.settings.connect_timeout.total_seconds()
        try:
            facts = state_facts(conninfo, variable=variable, timeout=timeout)
        except DatabaseUnavailableError as exc:
            return [unreachable(subject, exc.what, exc.why, exc.todo)]
        reached = ok(subject, "reachable", f"{variable}, database {facts.database}")
        return [reached, *state_checks(subject, variable, facts, LATEST)]


def log_report(report: Report) -> None:
    """One structlog line per check, at the check's level, for `rollbot serve`'s start-up."""
    for check in report.checks:
        emit = {"ok": log.info, "warning": log.warning, "error": log.error}[check.level]
        emit(
            "doctor.check",
            result=check.level,
            subject=check.subject,
            check=check.name,
            message=check.message,
            todo=check.todo or None,
        )
    summary = log.info if report.healthy else log.error
    summary("doctor.done", summary=report.summary(), errors=report.count("error"))
