"""Linting runbooks against the forward migration they undo."""

from __future__ import annotations

from pathlib import Path

from bot.core.runbook import Runbook, parse_runbook
from bot.drizzle.folder import Migration, read_migrations
from bot.drizzle.lint import created_objects, lint_runbook
from demo.sample import MIGRATIONS_DIR
from tests.fix_drizzle import chain_migration

SEED = Path(__file__).parents[2] / "runbooks" / "0023_loud_shen.md"
MIGRATION_0023 = read_migrations(MIGRATIONS_DIR)[1]


def runbook(sql: str, name: str) -> Runbook:
    text = f"# Rollback\n\n## Quick Rollback\n\n```sql\nBEGIN;\n{sql}\nCOMMIT;\n```\n"
    return parse_runbook(text, file=f"runbooks/{name}.md")


def seed(without: str = "") -> Runbook:
    text = SEED.read_text(encoding="utf-8")
    if without:
        assert without in text
        text = text.replace(without, "")
    return parse_runbook(text, file="runbooks/0023_loud_shen.md")


def test_seed_drops_one_constraint_0023_never_created() -> None:
    """The seed undoes all of 0023 and also names a foreign key 0023 never made."""
    report = lint_runbook(seed(), MIGRATION_0023)
    assert report.created_not_dropped == []
    assert report.dropped_not_created == [
        "constraint error_aggregations_resolved_by_users_id_fk on error_aggregations"
    ]
    assert not report.clean


def test_objects_dropped_with_their_table_need_no_statement() -> None:
    """An index on a table the runbook drops goes with the table, so forgetting it is fine."""
    report = lint_runbook(seed(without="DROP INDEX IF EXISTS idx_errors_user;"), MIGRATION_0023)
    assert report.created_not_dropped == []


def test_a_forgotten_table_is_reported_with_everything_on_it() -> None:
    """Leaving a table out leaves its columns, constraints and indexes behind, each named."""
    report = lint_runbook(seed(without="DROP TABLE IF EXISTS variant_statistics;"), MIGRATION_0023)
    assert report.created_not_dropped[:3] == [
        "table variant_statistics",
        "column id on variant_statistics",
        "constraint variant_statistics_pkey on variant_statistics",
    ]
    assert "index idx_variant_stats_base_asset" not in report.created_not_dropped  # dropped
    assert len(report.created_not_dropped) == 11  # the table, 9 columns, its primary key


def test_a_forgotten_index_on_an_old_table_is_reported() -> None:
    """An index 0002 puts on the older users table must be dropped by name, and is missed."""
    forgetful = runbook(
        "DROP INDEX IF EXISTS tasks_project_status_idx;\n"
        "ALTER TABLE tasks DROP CONSTRAINT IF EXISTS tasks_project_id_projects_id_fk;\n"
        "DROP TABLE IF EXISTS tasks;\n"
        "DROP TYPE IF EXISTS task_status;",
        "0002_amber_hulk",
    )
    report = lint_runbook(forgetful, chain_migration("0002"))
    assert report.created_not_dropped == ["index users_created_at_idx"]
    assert report.dropped_not_created == []


def test_dropping_an_added_column_takes_its_constraints_and_indexes() -> None:
    """A foreign key and an index on a column the runbook drops go with the column."""
    book = runbook(
        "ALTER TABLE users DROP COLUMN IF EXISTS team_id;\n"
        "ALTER TABLE projects DROP COLUMN IF EXISTS is_public;\n"
        "DROP TABLE IF EXISTS teams;",
        "0003_steady_harbor",
    )
    assert lint_runbook(book, chain_migration("0003")).clean


def test_a_forgotten_added_column_is_reported() -> None:
    """A column added to an older table stays unless the runbook drops it."""
    book = runbook(
        "DROP INDEX IF EXISTS users_team_idx;\n"
        "ALTER TABLE users DROP CONSTRAINT IF EXISTS users_team_id_teams_id_fk;\n"
        "ALTER TABLE users DROP COLUMN IF EXISTS team_id;\n"
        "DROP TABLE IF EXISTS teams;",
        "0003_steady_harbor",
    )
    report = lint_runbook(book, chain_migration("0003"))
    assert report.created_not_dropped == ["column is_public on projects"]


def test_schema_qualified_names_compare_without_the_schema() -> None:
    """Drizzle writes "public"."user_role"; a runbook's plain user_role is the same type."""
    book = runbook("DROP TABLE IF EXISTS public.users;\nDROP TYPE IF EXISTS user_role;", "0000_x")
    assert lint_runbook(book, chain_migration("0000")).clean


def test_created_objects_of_0023_are_what_the_seed_names() -> None:
    """Every index, foreign key, table and enum the seed drops is among 0023's creations."""
    labels = {obj.label() for obj in created_objects(MIGRATION_0023)}
    assert "type pipeline_status" in labels
    assert "constraint api_errors_resolved_by_users_id_fk on api_errors" in labels
    assert "constraint api_errors_pkey on api_errors" in labels
    assert len([label for label in labels if label.startswith("index ")]) == 34


def test_rows_deleted_by_a_runbook_are_not_drops() -> None:
    """A DELETE in the runbook removes rows, not objects, and is not linted."""
    book = runbook(
        "DELETE FROM users;\nDROP TABLE IF EXISTS users;\nDROP TYPE user_role;", "0000_x"
    )
    assert lint_runbook(book, chain_migration("0000")).clean


def test_what_a_runbook_drops_and_makes_again_is_neither_missing_nor_someone_elses() -> None:
    """A table renamed away, and a new one made under its name.

    The undo drops the new one and renames the old one back; an enum made again is dropped
    and renamed onto its name. Nothing is missing, nothing is someone else's.
    """
    forward = Migration(
        tag="0100_people",
        when=1,
        text='ALTER TABLE "users" RENAME TO "people";--> statement-breakpoint\n'
        'CREATE TABLE "users" ("id" int);',
    )
    undo = runbook(
        "DROP TABLE IF EXISTS users;\nALTER TABLE people RENAME TO users;\n"
        "CREATE TYPE tier_n1 AS ENUM ('a');\nDROP TYPE tier;\nALTER TYPE tier_n1 RENAME TO tier;",
        "0100_people",
    )
    report = lint_runbook(undo, forward)
    assert report.created_not_dropped == []
    assert report.dropped_not_created == []
