"""Which constraints a statement checks rows against, read from PostgreSQL's parse."""

from __future__ import annotations

from bot.core.sql import Validation, parse_statements


def validates(text: str) -> list[tuple[Validation, ...]]:
    return [s.validates for s in parse_statements(text, file="r.md", first_line=1)]


def test_an_added_constraint_is_validated_unless_not_valid() -> None:
    """ADD CONSTRAINT checks the rows at once; NOT VALID defers that to its VALIDATE."""
    found = validates(
        "ALTER TABLE public.orders ADD CONSTRAINT c CHECK (total >= 0) NOT VALID;\n"
        "ALTER TABLE public.orders ADD CONSTRAINT u UNIQUE (code);\n"
        "ALTER TABLE public.orders VALIDATE CONSTRAINT c;\n"
        "ALTER TABLE public.orders VALIDATE CONSTRAINT added_elsewhere"
    )
    assert [[v.name for v in f] for f in found] == [[], ["u"], ["c"], []]
    assert found[2][0].kind == "check"
    assert found[2][0].expression == "total >= 0"


def test_the_expression_is_the_deparsed_parse_not_the_text() -> None:
    """Comments and layout in the runbook never reach the count; the parse does."""
    (found,) = validates(
        "ALTER TABLE t ADD CONSTRAINT c CHECK (\n  v /* ) OR true */ > 0 -- ; x\n  AND w <> ';')"
    )
    assert found[0].expression == "v > 0 AND w <> ';'"


def test_keys_and_their_options_are_read() -> None:
    """Referenced table and columns, MATCH FULL, NULLS NOT DISTINCT, PRIMARY KEY, ONLY."""
    (found,) = validates(
        "ALTER TABLE ONLY s.c ADD CONSTRAINT fk FOREIGN KEY (a, b) REFERENCES p.parent (x, y)"
        " MATCH FULL, ADD UNIQUE NULLS NOT DISTINCT (a), ADD CONSTRAINT pk PRIMARY KEY (id),"
        " ADD CONSTRAINT by_index UNIQUE USING INDEX c_idx"
    )
    fk, unique, pk = found
    assert (fk.kind, fk.namespace, fk.table, fk.only) == ("foreign key", "s", "c", True)
    assert (fk.columns, fk.parent_namespace, fk.parent, fk.referenced) == (
        ("a", "b"),
        "p",
        "parent",
        ("x", "y"),
    )
    assert fk.match_full
    assert (unique.kind, unique.name, unique.nulls_not_distinct) == ("unique", None, True)
    assert unique.label() == "the unnamed UNIQUE on s.c"
    assert (pk.kind, pk.columns) == ("primary key", ("id",))
