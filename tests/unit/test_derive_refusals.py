"""Derived rollbacks refuse what the forward already destroyed, and put back in a working order."""

from __future__ import annotations

import pytest

from bot.core.errors import IrreversibleError
from bot.core.schema import Schema, SchemaObject, attributes
from bot.drizzle.derive import Before, derive_rollback
from bot.drizzle.folder import Migration

BREAK = "--> statement-breakpoint\n"
USERS = SchemaObject(kind="table", name="public.users")
EMAIL = SchemaObject(kind="column", name="public.users.email")
PLAIN = Before(schema=Schema(objects=(USERS, EMAIL)))
TRIGGERED = Before(
    schema=Schema(
        objects=(
            USERS,
            EMAIL,
            SchemaObject(
                kind="trigger",
                name="public.users.users_touch",
                parent="table public.users",
                attributes=attributes(("definition", "CREATE TRIGGER users_touch …")),
            ),
        )
    )
)
INDEXED = Before(
    schema=Schema(
        objects=(
            USERS,
            EMAIL,
            SchemaObject(
                kind="index",
                name="public.users_email_idx",
                attributes=attributes(
                    (
                        "definition",
                        "CREATE INDEX users_email_idx ON public.users USING btree (email)",
                    )
                ),
            ),
            SchemaObject(
                kind="constraint",
                name="public.users.users_email_check",
                attributes=attributes(("definition", "CHECK ((email <> ''::text))")),
            ),
        )
    )
)


def undo(*statements: str, before: Before = PLAIN) -> list[str]:
    migration = Migration(tag="0100_snippet", when=1, text=BREAK.join(statements))
    return [sql for u in derive_rollback(migration, before) for sql in u.statements]


def refused(*statements: str, before: Before = PLAIN) -> IrreversibleError:
    with pytest.raises(IrreversibleError) as caught:
        undo(*statements, before=before)
    return caught.value


ORGS = (
    'CREATE TABLE "orgs" ("id" integer PRIMARY KEY);',
    'INSERT INTO "orgs" SELECT DISTINCT "org_id" FROM "users";',
)


@pytest.mark.parametrize(
    ("link", "then"),
    [
        (
            (
                'ALTER TABLE "users" ADD CONSTRAINT "users_org_fk" FOREIGN KEY ("org_id") '
                'REFERENCES "orgs"("id") ON DELETE cascade;'
            ),
            'DELETE FROM "orgs" WHERE "id" > 1;',
        ),
        (
            (
                'ALTER TABLE "users" ADD CONSTRAINT "users_org_fk" FOREIGN KEY ("org_id") '
                'REFERENCES "orgs"("id") ON DELETE set null;'
            ),
            'TRUNCATE "orgs" CASCADE;',
        ),
        (
            (
                'ALTER TABLE "users" ADD COLUMN "org" integer REFERENCES "orgs"("id") '
                "ON UPDATE cascade;"
            ),
            'UPDATE "orgs" SET "id" = "id" + 100;',
        ),
    ],
)
def test_rows_of_a_new_table_that_old_rows_reference_are_not_new_alone(
    link: str, then: str
) -> None:
    """Deleting, emptying or changing them reached users' rows through the foreign key."""
    error = refused(*ORGS, link, then)
    assert error.line == 4
    assert "which users references through a foreign key this migration added" in error.reason


def test_rows_of_a_new_table_nothing_old_references_are_still_new() -> None:
    """Without a key from an old table, what happens to the new table's rows goes with it."""
    assert undo(*ORGS, 'DELETE FROM "orgs" WHERE "id" > 1;') == ["DROP TABLE IF EXISTS orgs"]


def test_a_backfill_of_a_new_column_is_refused_where_the_table_has_triggers() -> None:
    """The UPDATE fires users' own trigger, which may rewrite the old columns of every row."""
    backfill = (
        'ALTER TABLE "users" ADD COLUMN "verified" boolean;',
        'UPDATE "users" SET "verified" = false;',
    )
    assert undo(*backfill) == ["ALTER TABLE users DROP COLUMN IF EXISTS verified"]
    error = refused(*backfill, before=TRIGGERED)
    assert error.line == 2
    assert "its trigger users_touch runs on each" in error.reason


def test_an_old_column_renamed_onto_a_new_columns_old_name_is_not_new() -> None:
    """A new column renamed away, email renamed onto its name: UPDATE of it overwrites email."""
    error = refused(
        'ALTER TABLE "users" ADD COLUMN "tmp" text;',
        'ALTER TABLE "users" RENAME COLUMN "tmp" TO "tmp2";',
        'ALTER TABLE "users" RENAME COLUMN "email" TO "tmp";',
        'UPDATE "users" SET "tmp" = \'redacted\';',
    )
    assert error.line == 4


def test_definitions_from_n_minus_1_come_back_after_the_renames_back() -> None:
    """Their definitions name N-1's table and columns, so the renames back run first."""
    assert undo(
        'ALTER TABLE "users" RENAME COLUMN "email" TO "mail";',
        'ALTER TABLE "users" RENAME TO "members";',
        'DROP INDEX "users_email_idx";',
        'ALTER TABLE "members" DROP CONSTRAINT "users_email_check";',
        before=INDEXED,
    ) == [
        "ALTER TABLE members RENAME TO users",
        "ALTER TABLE users RENAME COLUMN mail TO email",
        (
            "ALTER TABLE public.users ADD CONSTRAINT users_email_check "
            "CHECK ((email <> ''::text)) NOT VALID"
        ),
        "ALTER TABLE public.users VALIDATE CONSTRAINT users_email_check",
        "CREATE INDEX users_email_idx ON public.users USING btree (email)",
    ]


def test_a_refusal_names_a_renamed_column_by_its_n_minus_1_name() -> None:
    """The column is looked up, and named, as N-1 had it."""
    error = refused(
        'ALTER TABLE "users" RENAME COLUMN "email" TO "mail";',
        'ALTER TABLE "users" ALTER COLUMN "mail" SET DATA TYPE integer;',
    )
    assert "its values were converted" in error.reason
