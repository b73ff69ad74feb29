"""What a plan is made from: runbooks, the Drizzle migrations folder and the live catalog.

Rollbacks, restores and stale-plan checks all plan through here, so an approval is compared
against a plan made exactly the way the approved one was.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.core.errors import NotAllowedError, NotFoundError
from bot.core.library import ParsedRunbooks, RunbookLibrary, load_library
from bot.core.names import split_qualified
from bot.core.plan import Plan, build_plan
from bot.core.quarantine import QUARANTINE_PREFIX
from bot.core.runbook import parse_runbook
from bot.core.targets import TargetConfig
from bot.drizzle.derive import Before, derive_runbook, needs_reference
from bot.drizzle.folder import Migration, read_migrations
from bot.drizzle.history import HistoryEntry, history
from bot.drizzle.journal import match_journal
from bot.drizzle.rules import (
    before,
    find_by_query,
    journal_plan,
    lint,
    newer_applied,
    unexpected_drops,
)
from bot.state.store import STATE_SCHEMA
from bot.target.database import TargetDatabase
from bot.target.reference import Reference, ReferenceCache

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from bot.config import Settings
    from bot.core.facts import Facts
    from bot.core.runbook import Runbook
    from bot.state.store import RunStore


class Planner:
    """Settings in, runbooks, approvers and plans out."""

    def __init__(
        self,
        settings: Settings,
        store: RunStore,
        approvers: Callable[[tuple[str, ...]], frozenset[str]] | None = None,
        databases: Mapping[str, TargetDatabase] | None = None,
    ) -> None:
        self.settings = settings
        self._store = store
        self._parsed = ParsedRunbooks()
        self._redactor = settings.redactor()
        self._expand = approvers or _direct_ids
        self._expands_groups = approvers is not None
        # One adapter per target for the life of the process: each keeps the client tools
        # it probed, and no use case ever holds a connection string.
        self._databases = dict(databases) if databases is not None else target_databases(settings)
        self._rehearsal_server = rehearsal_database(settings)
        self.references = ReferenceCache()

    def library(self) -> RunbookLibrary:
        """The runbooks as their files are now: an edit takes effect (and voids old plans).

        Each file is parsed once per version of it (`ParsedRunbooks`), not on every request.
        """
        return load_library(self.settings.runbooks_dir, self._parsed)

    def approvers(self, target_name: str) -> frozenset[str]:
        """User ids allowed to approve on a target (user groups expanded)."""
        return self._expand(self.settings.approvers_for(self.settings.target(target_name)))

    def unexpanded_groups(self, target_name: str) -> tuple[str, ...]:
        """The user groups among a target's approvers that nobody here can look up.

        Without Slack (a CLI with no SLACK_BOT_TOKEN) a group's members are unknown; a refusal
        must say that, or a member is told they are no approver and looks in the wrong place.
        """
        if self._expands_groups:
            return ()
        configured = self.settings.approvers_for(self.settings.target(target_name))
        return tuple(i for i in configured if i.startswith("S"))

    def latest_first(self, query: str, target: TargetConfig) -> None:
        """Refuse a migration that is not the newest applied, before anything else is said.

        Asking to roll back 0022 while 0023 is applied has one answer, whatever 0022 holds:
        roll back 0023 first. Deriving 0022 first would answer "irreversible" instead.
        """
        migrations = self.migrations()
        migration = find_by_query(migrations, query)
        if migration is None:
            return
        newer = newer_applied(migration.tag, migrations, self.database(target.name).journal_rows())
        if newer is not None:
            raise _not_the_newest(migration.tag, newer)

    def reference(self, plan: Plan, runbook: Runbook, server: TargetDatabase) -> Reference | None:
        """The schema at N-1 for a plan that deletes a journal row; None for any other plan.

        A runbook with `journal: false` leaves the journal alone, so it is not held to N-1.
        """
        if plan.journal is None or plan.journal.row is None:
            return None
        migrations = self.migrations()
        previous = before(migrations, runbook.name)
        if previous is None or migrations is None:
            return None
        upto = migrations[: len(previous) + 1]  # 0…N: N-1 to compare with, N to tell drift
        label = previous[-1].tag.split("_", 1)[0] if previous else "an empty database"
        return self.references.reference(
            server, upto, label=label, exclude=(*self.exclude(), self.settings.drizzle_schema)
        )

    def runbook(self, query: str, target: str | None = None) -> Runbook:
        """The runbook for a migration, or one derived from its forward migration file."""
        try:
            return self.library().find(query)
        except NotFoundError:
            migration = find_by_query(self.migrations(), query)
            if migration is None:
                raise
        text = self.derived(migration, target)
        derived = parse_runbook(text, file=f"derived from {migration.tag}.sql")
        return derived.model_copy(update={"derived": True})

    def derived(self, migration: Migration, target: str | None = None) -> str:
        """The derived runbook of `migration`, undone from the schema at N-1 where it must be.

        The replay is made only when an undo needs the old state (a dropped index, a changed
        default); it is the same cached reference the rehearsal then proves the plan against.
        """
        if not needs_reference(migration):
            return derive_runbook(migration)
        return derive_runbook(migration, before=self.before(migration, target))

    def before(self, migration: Migration, target: str | None = None) -> Before:
        """The schema at N-1 of `migration` on `target`'s rehearsal server, or why there is none."""
        server = self.rehearsal_server(self.database(target))
        exclude = (*self.exclude(), self.settings.drizzle_schema)
        return schema_before(self.references, server, self.migrations() or [], migration, exclude)

    def migrations(self) -> list[Migration] | None:
        """The project's Drizzle migrations folder (ROLLBOT_MIGRATIONS_DIR), when configured."""
        folder = self.settings.migrations_dir
        return read_migrations(folder) if folder is not None else None

    def history(
        self, target: str | None = None, person: Callable[[str], str] = str
    ) -> list[HistoryEntry]:
        """The migration history of a target, live from its Drizzle journal and rollbot's runs."""
        config = self.settings.target(target)
        rows = self.database(config.name).journal_rows()
        statuses = match_journal(self.migrations(), rows or [])
        return history(
            statuses, self.library(), self._store.recent(limit=500), config.name, person=person
        )

    def database(self, target: str | None = None) -> TargetDatabase:
        """The adapter for a target (the default one without a name), built at start-up."""
        return self._databases[self.settings.target(target).name]

    def rehearsal_server(self, target: TargetDatabase) -> TargetDatabase:
        """Where scratch copies are made: ROLLBOT_REHEARSAL_URL's server, else the target's."""
        return self._rehearsal_server or target

    def plan(
        self, runbook: Runbook, target: TargetConfig, *, count: bool, latest_only: bool = False
    ) -> Plan:
        """The plan of a runbook on a target as it is now (row counts only when asked)."""
        migrations = self.migrations()
        budget = self.settings.count_budget if count else None
        facts, rows = self.database(target.name).plan_facts(runbook, count_budget=budget)
        newer = newer_applied(runbook.name, migrations, rows)
        if latest_only and newer is not None:
            raise _not_the_newest(runbook.name, newer)
        return build_plan(
            runbook,
            facts,
            lock_timeout=self.settings.lock_timeout,
            statement_timeout=self.settings.statement_timeout,
            journal=journal_plan(
                runbook,
                migrations,
                rows,
                schema=self.settings.drizzle_schema,
                table=self.settings.drizzle_table,
            ),
            lint=lint(runbook, migrations),
            drop_mode=self.settings.drop_mode,
            more_blockers=unexpected_drops(runbook, facts, migrations)
            + ([f"{newer} was applied after {runbook.name}: roll it back first"] if newer else [])
            + self._secret_statements(runbook)
            + _rollbots_own(runbook, facts),
        )

    def _secret_statements(self, runbook: Runbook) -> list[str]:
        """Statements holding a known secret: such a plan is blocked, never run.

        A secret is masked wherever it is shown (and stored), so nobody could see what they
        would approve, and the stored plan would no longer be the SQL that runs.
        """
        return [
            f"statement {s.number} ({runbook.file}:{s.line}) holds one of rollbot's secrets "
            "(a password or token); it would be shown masked, so it cannot be approved"
            for s in runbook.statements
            if self._redactor.holds(s.sql)
        ]

    def exclude(self) -> tuple[str, ...]:
        """Rollbot's own schema is never application data: not backed up, not checked.

        It exists in a target only when that target also keeps the state; excluding a
        schema that is not there is harmless, so no target needs to know which one does.
        """
        return (STATE_SCHEMA,)


def _rollbots_own(runbook: Runbook, facts: Facts) -> list[str]:
    """Objects the runbook would change in rollbot's own schemas: never a rollback's to touch.

    An unqualified name resolves through rollbot's search_path, whose "$user" is rollbot's
    role, and so its state schema when the target keeps the state: a runbook's `runs` could
    be rollbot's table of runs. The same goes for a quarantine, which only a restore or a
    purge may change.
    """
    lines = {s.number: s.line for s in runbook.statements}
    blockers = []
    for found in facts.objects:
        if not found.exists:
            continue
        try:
            schema = split_qualified(found.table.name if found.table else found.name)[0]
        except ValueError:
            continue
        if schema == STATE_SCHEMA or schema.startswith(QUARANTINE_PREFIX):
            blockers.append(
                f"{runbook.file}:{lines[found.statement]}: {found.name} is in {schema}, "
                "rollbot's own schema, which no rollback may change; qualify the name with "
                "the application's schema (an unqualified name resolves through rollbot's "
                'search_path, whose "$user" is rollbot\'s role)'
            )
    return blockers


def schema_before(
    references: ReferenceCache,
    server: TargetDatabase,
    migrations: list[Migration],
    migration: Migration,
    exclude: tuple[str, ...],
) -> Before:
    """The schema before `migration`, replayed on `server` (or cached), or why there is none."""
    previous = before(migrations, migration.tag)
    if previous is None:
        return Before(unavailable=f"{migration.tag} is not in ROLLBOT_MIGRATIONS_DIR")
    label = previous[-1].tag.split("_", 1)[0] if previous else "an empty database"
    reference = references.reference(
        server, migrations[: len(previous) + 1], label=label, exclude=exclude
    )
    if reference.schema is None:
        return Before(unavailable=f"that failed: {reference.skipped}")
    return Before(schema=reference.schema)


def derive_for_cli(settings: Settings, migration: Migration) -> str:
    """`rollbot derive`: from the files alone, or from N-1 when an undo needs it.

    N-1 is replayed on the default target's rehearsal server when a database is configured.
    """
    if not needs_reference(migration):
        return derive_runbook(migration)
    if not settings.targets():
        why = "no database is configured to replay them on (set DATABASE_URL)"
        return derive_runbook(migration, before=Before(unavailable=why))
    target = settings.target()
    rehearsal_url = settings.rehearsal_url
    server = _database(
        settings,
        TargetConfig(name="rehearsal", url=rehearsal_url) if rehearsal_url else target,
    )
    migrations = read_migrations(settings.migrations_dir) if settings.migrations_dir else []
    exclude = (STATE_SCHEMA, settings.drizzle_schema)
    before_n = schema_before(ReferenceCache(), server, migrations, migration, exclude)
    return derive_runbook(migration, before=before_n)


def _not_the_newest(name: str, newer: str) -> NotAllowedError:
    ours, theirs = name.split("_", 1)[0], newer.split("_", 1)[0]
    return NotAllowedError(
        f"Only the newest applied migration can be rolled back, and that is {newer}",
        why=f"{theirs} is applied after {ours}: roll back {theirs} first; rolling {ours} back "
        f"first would leave {theirs} on top of a schema it does not expect",
        todo=f"roll back {newer} first (several migrations = several runs, newest first)",
    )


def target_databases(settings: Settings) -> dict[str, TargetDatabase]:
    """The adapter of every configured target, by name."""
    return {name: _database(settings, config) for name, config in settings.targets().items()}


def rehearsal_database(settings: Settings) -> TargetDatabase | None:
    """ROLLBOT_REHEARSAL_URL's server, where scratch copies are made; None: each target's own."""
    url = settings.rehearsal_url
    return _database(settings, TargetConfig(name="rehearsal", url=url)) if url else None


def _database(settings: Settings, config: TargetConfig) -> TargetDatabase:
    return TargetDatabase(
        config,
        connect_timeout=settings.connect_timeout,
        journal_schema=settings.drizzle_schema,
        journal_table=settings.drizzle_table,
        pg_bin=settings.pg_bin,
    )


def _direct_ids(configured: tuple[str, ...]) -> frozenset[str]:
    """Without Slack, user groups cannot be expanded: only user ids approve."""
    return frozenset(i for i in configured if i[:1] in {"U", "W"})
