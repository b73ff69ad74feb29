"""A database schema as plain values, and the short diff between two of them.

A rollback that changes Drizzle's journal is right only if the schema it leaves is the one
Drizzle's migrator builds from the migrations before it. Both schemas are read from the
catalog (`bot.target.schema`) into `SchemaObject`s; comparing them is pure, so what counts as
"the same" is decided here, tested without a server.

PostgreSQL renders the same object in more than one way: an expression kept by the catalog is
deparsed with the parentheses, quoting and spacing of the moment, so `CHECK (amount > 0)` as
written comes back `CHECK ((amount > 0))`. Every rendering is parsed with PostgreSQL's own
parser (pglast) and printed again, so two texts are equal when their parse trees are, and only
then. Owners, privileges, statistics, a sequence's current value and column order (pg_dump
renumbers columns after a dropped one) are not part of a schema here: none of them is what a
later `drizzle-kit migrate` depends on.
"""

from __future__ import annotations

import re
from typing import Literal

from pglast import parse_sql
from pglast.parser import ParseError
from pglast.stream import RawStream
from pydantic import BaseModel, ConfigDict

Kind = Literal[
    "schema",
    "extension",
    "type",
    "sequence",
    "table",
    "column",
    "constraint",
    "index",
    "view",
    "materialized view",
    "function",
    "trigger",
    "policy",
]
# How an attribute's text is normalised before it is compared.
Rendering = Literal["text", "expression", "constraint", "statement", "query"]

_SPACES = re.compile(r"\s+")


class Attribute(BaseModel):
    """One compared property of an object: `default`, `type`, `definition`, `labels`."""

    model_config = ConfigDict(frozen=True)

    name: str
    text: str
    rendering: Rendering = "text"


class SchemaObject(BaseModel):
    """One object of a schema, named as a person reads it: `column public.users.email`."""

    model_config = ConfigDict(frozen=True)

    kind: Kind
    name: str  # qualified: `public.users`, `public.users.email`, `public.users_pkey`
    parent: str | None = None  # the table (or type) it belongs to, as `kind name`
    attributes: tuple[Attribute, ...] = ()

    @property
    def key(self) -> str:
        """`table public.users`: what the diff names it by."""
        return f"{self.kind} {self.name}"


class Schema(BaseModel):
    """Every object of a database's application schemas."""

    model_config = ConfigDict(frozen=True)

    objects: tuple[SchemaObject, ...]
    server_major: int = 0

    def by_key(self) -> dict[str, SchemaObject]:
        """The objects by `kind name`."""
        return {o.key: o for o in self.objects}


def outside_chain(actual: Schema, reference: Schema, forward: Schema) -> list[str]:
    """Objects of `actual` that neither N-1 nor N has: no migration of the chain made them.

    A table a DBA or another tool added is not the rollback's to prove; it is named, not
    compared, or every rollback on such a database would be blocked by what it never touched.
    """
    made = reference.by_key().keys() | forward.by_key().keys()
    ours = actual.by_key()
    drift = {k for k in ours if k not in made}
    return [_shown(k) for k in sorted(drift) if ours[k].parent not in drift]


def changed_outside(before: Schema, after: Schema, reference: Schema, forward: Schema) -> list[str]:
    """What a rollback changed among the objects no migration of the chain made.

    A rollback of a Drizzle migration has no business there: a change means a name resolved
    to something else than the migration's object, and the journal would be rolled back
    while the migration's own object stayed.
    """
    made = reference.by_key().keys() | forward.by_key().keys()

    def unmade(schema: Schema) -> Schema:
        return Schema(objects=tuple(o for o in schema.objects if o.key not in made))

    lines = diff_schemas(unmade(after), unmade(before), reference_label="before the rollback")
    words = {"left behind": "created", "missing": "removed", "differs": "changed"}
    out = []
    for line in lines:
        what, _, rest = line.partition(": ")
        out.append(f"{words.get(what, what)} outside the chain: {rest}")
    return out


def diff_schemas(
    actual: Schema, reference: Schema, *, reference_label: str, forward: Schema | None = None
) -> list[str]:
    """What differs between the schema left behind and the reference, one short line each.

    `left behind: table variant_statistics` (in `actual` only), `missing: index idx_x` (in
    `reference` only), `differs: column users.email default: …`. An object whose parent is
    itself left behind or missing is not listed again: a table left behind brings its columns
    and indexes with it, and naming them would hide the point. With `forward` (the schema at
    N), an object that N does not have either is outside the chain and not left behind.
    """
    ours, theirs = actual.by_key(), reference.by_key()
    made = forward.by_key().keys() if forward is not None else ours.keys()
    extra = {k for k in ours if k not in theirs and k in made}
    gone = {k for k in theirs if k not in ours}
    lines = [f"left behind: {_shown(k)}" for k in sorted(extra) if ours[k].parent not in extra]
    lines += [f"missing: {_shown(k)}" for k in sorted(gone) if theirs[k].parent not in gone]
    for key in sorted(ours.keys() & theirs.keys()):
        lines += _differences(ours[key], theirs[key], reference_label)
    return lines


# Read for deriving, not compared: whether a materialized view holds rows is the state of its
# data (a REFRESH changes it), and no later `drizzle-kit migrate` depends on it.
_NOT_COMPARED = frozenset({"populated"})


def _differences(actual: SchemaObject, reference: SchemaObject, label: str) -> list[str]:
    mine = {a.name: a for a in actual.attributes}
    other = {a.name: a for a in reference.attributes}
    lines = []
    for name in sorted((mine.keys() | other.keys()) - _NOT_COMPARED):
        left, right = mine.get(name), other.get(name)
        left_text = normalized(left.text, left.rendering) if left else None
        right_text = normalized(right.text, right.rendering) if right else None
        if left_text != right_text:
            now = left.text if left else "none"
            then = right.text if right else "none"
            shown = f"{_shown(actual.key)} {name}"
            lines.append(f"differs: {shown}: {_short(now)} ({label}: {_short(then)})")
    return lines


def _shown(key: str) -> str:
    """`table variant_statistics`: the `public.` everyone assumes is left out."""
    kind, _, name = key.partition(" public.")
    return f"{kind} {name}" if name else key


def _short(text: str, limit: int = 80) -> str:
    flat = _SPACES.sub(" ", text).strip()
    return flat if len(flat) <= limit else f"{flat[: limit - 1]}…"


def normalized(text: str, rendering: Rendering) -> str:
    """The text as PostgreSQL's parser reads it, printed back; plain text, spacing collapsed.

    Text that does not parse is compared by its spacing-collapsed self: a parse failure must
    never make two different texts equal.
    """
    flat = _SPACES.sub(" ", text).strip()
    wrapped = {
        "text": None,
        "expression": ("SELECT ", ""),
        "constraint": ("ALTER TABLE t ADD ", ""),
        "statement": ("", ""),
        "query": ("", ""),
    }[rendering]
    if wrapped is None:
        return flat
    before, after = wrapped
    try:
        statements = parse_sql(f"{before}{flat.removesuffix(';')}{after}")
    except ParseError:
        return flat
    return ";".join(RawStream()(s) for s in statements)


def attributes(
    *pairs: tuple[str, str | None] | tuple[str, str | None, Rendering],
) -> tuple[Attribute, ...]:
    """Attributes from `(name, text[, rendering])`, leaving out the ones that are None."""
    made = []
    for pair in pairs:
        name, text = pair[0], pair[1]
        rendering: Rendering = pair[2] if len(pair) == 3 else "text"  # noqa: PLR2004
        if text is not None:
            made.append(Attribute(name=name, text=text, rendering=rendering))
    return tuple(made)
