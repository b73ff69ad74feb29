"""The pure schema diff: what differs is named shortly, what only renders differently is equal."""

from __future__ import annotations

import pytest

from bot.core.schema import (
    Schema,
    SchemaObject,
    attributes,
    diff_schemas,
    normalized,
    outside_chain,
)


def _table(name: str, *columns: SchemaObject) -> tuple[SchemaObject, ...]:
    return (SchemaObject(kind="table", name=name), *columns)


def _column(table: str, name: str, default: str | None = None) -> SchemaObject:
    return SchemaObject(
        kind="column",
        name=f"{table}.{name}",
        parent=f"table {table}",
        attributes=attributes(("type", "text"), ("default", default, "expression")),
    )


def _diff(actual: tuple[SchemaObject, ...], reference: tuple[SchemaObject, ...]) -> list[str]:
    return diff_schemas(Schema(objects=actual), Schema(objects=reference), reference_label="0022")


@pytest.mark.parametrize(
    ("left", "right", "rendering"),
    [
        ("CHECK ((amount_cents > 0))", 'CHECK ("amount_cents" > 0)', "constraint"),
        ("CHECK (((a > 0) AND (b > 0)))", "CHECK (a > 0 and b > 0)", "constraint"),
        ("now()", "NOW( )", "expression"),
        (
            "CREATE INDEX idx_x ON public.users USING btree (created_at)",
            'CREATE INDEX "idx_x" ON "public"."users" USING btree ("created_at")',
            "statement",
        ),
        (
            " SELECT tasks.id\n   FROM public.tasks\n  WHERE (tasks.status <> 'done');",
            "SELECT tasks.id FROM public.tasks WHERE tasks.status <> 'done'",
            "query",
        ),
    ],
)
def test_renderings_that_mean_the_same_compare_equal(left: str, right: str, rendering: str) -> None:
    """Parentheses, quoting, case and spacing are PostgreSQL's rendering, not the object."""
    assert normalized(left, rendering) == normalized(right, rendering)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("left", "right", "rendering"),
    [
        ("CHECK ((amount_cents > 0))", "CHECK ((amount_cents >= 0))", "constraint"),
        ("'member'::text", "'admin'::text", "expression"),
        ("'a', 'b'", "'b', 'a'", "text"),
        ("CREATE INDEX i ON t (a, b)", "CREATE INDEX i ON t (b, a)", "statement"),
    ],
)
def test_renderings_that_mean_something_else_differ(left: str, right: str, rendering: str) -> None:
    """A different operator, literal, label order or column order is a different object."""
    assert normalized(left, rendering) != normalized(right, rendering)  # type: ignore[arg-type]


def test_text_that_does_not_parse_is_compared_as_written() -> None:
    """A parse failure never makes two different texts equal."""
    assert normalized("CHECK (((", "constraint") != normalized("CHECK ((((", "constraint")


def test_an_object_left_behind_is_named_once_without_its_parts() -> None:
    """A forgotten table is one line: its columns go with it."""
    reference = _table("public.users", _column("public.users", "id"))
    actual = (
        *reference,
        *_table("public.variant_statistics", _column("public.variant_statistics", "base_asset_id")),
    )
    assert _diff(actual, reference) == ["left behind: table variant_statistics"]


def test_a_missing_object_and_a_changed_default_are_named() -> None:
    """What N-1 has and the copy lacks is missing; a different default is shown both ways."""
    reference = (
        *_table("public.users", _column("public.users", "email", "'x'::text")),
        SchemaObject(kind="index", name="public.idx_x", parent="table public.users"),
        SchemaObject(kind="index", name="audit.idx_y", parent="table audit.log"),
    )
    actual = _table("public.users", _column("public.users", "email", "'y'::text"))
    assert _diff(actual, reference) == [
        "missing: index audit.idx_y",
        "missing: index idx_x",
        "differs: column users.email default: 'y'::text (0022: 'x'::text)",
    ]


def test_enum_labels_compare_in_order() -> None:
    """`ALTER TYPE … ADD VALUE` left behind, or labels reordered, is a difference."""

    def enum(labels: str) -> SchemaObject:
        return SchemaObject(
            kind="type", name="public.role", attributes=attributes(("labels", labels))
        )

    assert _diff((enum("'member', 'admin'"),), (enum("'member', 'admin'"),)) == []
    assert _diff((enum("'admin', 'member'"),), (enum("'member', 'admin'"),)) == [
        "differs: type role labels: 'admin', 'member' (0022: 'member', 'admin')"
    ]


def test_equal_schemas_have_no_diff() -> None:
    """The same objects in another order are the same schema."""
    objects = _table("public.users", _column("public.users", "id"), _column("public.users", "b"))
    assert _diff(objects, tuple(reversed(objects))) == []


def test_an_object_no_migration_made_is_named_not_left_behind() -> None:
    """A table neither N-1 nor N has (a DBA's) is outside the chain; one N made is left behind."""
    reference = _table("public.users")
    forward = (*reference, *_table("public.variant_statistics"))
    actual = (*forward, *_table("public.vault", _column("public.vault", "note")))
    schemas = [Schema(objects=o) for o in (actual, reference, forward)]
    assert diff_schemas(schemas[0], schemas[1], reference_label="0022", forward=schemas[2]) == [
        "left behind: table variant_statistics"
    ]
    assert outside_chain(*schemas) == ["table vault"]


def test_a_view_s_options_are_compared_but_not_whether_it_holds_rows() -> None:
    """`WITH (security_barrier)` is the view's definition; a REFRESH is its data's state."""

    def view(options: str | None, populated: str) -> SchemaObject:
        return SchemaObject(
            kind="materialized view",
            name="public.counts",
            attributes=attributes(
                ("definition", "SELECT 1"), ("options", options), ("populated", populated)
            ),
        )

    assert _diff((view(None, "false"),), (view(None, "true"),)) == []
    assert _diff((view("fillfactor=50", "true"),), (view(None, "true"),)) == [
        "differs: materialized view counts options: fillfactor=50 (0022: none)"
    ]
