"""What the live database says, as plain values.

The catalog adapter fills these in; the planner only reads them. Keeping them as data is what
lets the planner be a pure function, tested with hand-written facts, and lets the plan hash
cover exactly the inventory the decision was made on.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from bot.core.functions import Volatility
from bot.core.quarantine import KeptKey
from bot.core.sql import ObjectKind


class Target(BaseModel):
    """The database a plan is for; never holds a password."""

    model_config = ConfigDict(frozen=True)

    name: str = "default"
    host: str
    port: int | None = None
    dbname: str
    user: str | None = None
    server_version: str = ""
    server_major: int = 0
    # The schemas unqualified names resolve in for rollbot's session, "$user" expanded (None in
    # plans read before it was kept): the rollback and its rehearsal both run under exactly
    # these, so a copy, whose database settings and role differ, resolves names as the target.
    search_path: tuple[str, ...] | None = None

    def label(self) -> str:
        """`asset_forge on db.internal:5432` (socket paths shown as local)."""
        host = "local socket" if self.host.startswith("/") or not self.host else self.host
        port = f":{self.port}" if self.port and not host.startswith("local") else ""
        prefix = f"{self.name}: " if self.name != "default" else ""
        return f"{prefix}{self.dbname} on {host}{port}"

    def identity(self) -> str:
        """What makes two plans be for the same database, for the hash and the run lock."""
        return f"{self.name}|{self.host}|{self.port}|{self.dbname}"


class Table(BaseModel):
    """A table by oid and by its schema-qualified, quoted-as-needed name."""

    model_config = ConfigDict(frozen=True)

    oid: int
    name: str  # e.g. public.users, public."Odd Name"


class Found(BaseModel):
    """One object a statement names, as it exists now (or not)."""

    model_config = ConfigDict(frozen=True)

    statement: int  # Statement.number
    position: int  # index in Statement.objects
    kind: ObjectKind
    name: str  # resolved qualified name, or as written when absent
    exists: bool
    oid: int | None = None
    attnum: int | None = None  # columns
    actual_kind: str | None = None  # what the name really is when it is not `kind`
    table: Table | None = None  # the table the object is, or belongs to
    fk_parents: tuple[Table, ...] = ()  # tables whose FKs vanish with it (locked too)


class NullCount(BaseModel):
    """NULL rows of a column a statement makes NOT NULL; one of them makes it fail."""

    model_config = ConfigDict(frozen=True)

    statement: int  # Statement.number
    column: str  # public.comments.body
    rows: int | None  # None: the table is not there to count, or counting ran out of time


class SequenceState(BaseModel):
    """A sequence an ALTER SEQUENCE changes, as it is now: its options and current value.

    `last_value` is None when it could not be read, and `why` says why.
    """

    model_config = ConfigDict(frozen=True)

    statement: int  # Statement.number
    sequence: str  # public.orders_id_seq
    type: str  # bigint
    increment: int
    min: int
    max: int
    start: int
    last_value: int | None
    why: str = ""


class UnfitCount(BaseModel):
    """Rows of a column a statement casts back that the type would not hold exactly.

    `rows` is None when they were not counted, and `why` says why.
    """

    model_config = ConfigDict(frozen=True)

    statement: int  # Statement.number
    column: str  # public.tags.name
    type: str  # the type it is cast to: `character varying(50)`
    rows: int | None
    why: str = ""
    labels: tuple[str, ...] | None = None  # to an enum: its labels, which the rows lack
    refused: bool = False  # the cast may not run at all (`why` says why), counted or not


class ViolationCount(BaseModel):
    """Rows that violate a constraint a statement checks; one of them makes it fail.

    `rows` is None when they were not counted, and `why` says why: counting a CHECK runs its
    expression, so it is counted only when everything it calls is PostgreSQL's own harmless
    code, and no count ever reads a table whose policies or foreign wrapper would run code.
    """

    model_config = ConfigDict(frozen=True)

    statement: int  # Statement.number
    constraint: str  # orders_total_check
    kind: str  # check, foreign key, unique, primary key, exclusion
    table: str  # public.orders
    rows: int | None
    why: str | None = None  # why it was not counted


class Reference(BaseModel):
    """Something in the database that depends on an object the runbook drops."""

    model_config = ConfigDict(frozen=True)

    statement: int
    position: int
    dependent: str  # pg_describe_object() text, e.g. "constraint x on table y"
    identity: str  # classid:objid:objsubid, stable for the hash
    owners: tuple[int, ...]  # oids whose drop also removes the dependent
    owner_column: tuple[int, int] | None = None  # (table oid, attnum) whose drop removes it


class RowCount(BaseModel):
    """Rows in a table: exact, or PostgreSQL's estimate when counting took too long."""

    model_config = ConfigDict(frozen=True)

    table: str
    rows: int | None  # None: never analysed and too big to count in time
    exact: bool

    def label(self) -> str:
        """`1,204 rows`, `~3,000,000 rows (estimate)` or `unknown`."""
        if self.rows is None:
            return "unknown (too large to count in time, never analysed)"
        if self.exact:
            return f"{self.rows:,} rows"
        return f"~{self.rows:,} rows (estimate)"


# pg_constraint's confdeltype/confupdtype: NO ACTION, RESTRICT, CASCADE, SET NULL, SET DEFAULT.
FkAction = Literal["a", "r", "c", "n", "d"]
RowEvent = Literal["DELETE", "UPDATE", "INSERT", "TRUNCATE"]


class ForeignKey(BaseModel):
    """A foreign key whose actions can change the rows of `child` when `parent` changes.

    Columns are named, not numbered: a partition's attribute numbers can differ from its
    parent's, its column names cannot.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    child: Table  # the referencing table, whose rows the action changes
    parent: Table  # the referenced table
    columns: tuple[str, ...]  # the child's referencing columns
    referenced: tuple[str, ...]  # the parent's referenced columns, in the same order
    on_delete: FkAction
    on_update: FkAction
    delete_sets: tuple[str, ...] = ()  # ON DELETE SET NULL/DEFAULT (columns): only those

    def identity(self) -> str:
        """What the plan hash covers: any change to the key or its actions changes it."""
        return (
            f"{self.name}|{self.child.oid}|{self.parent.oid}|{','.join(self.columns)}|"
            f"{','.join(self.referenced)}|{self.on_delete}{self.on_update}|"
            f"{','.join(self.delete_sets)}"
        )


class Descendant(BaseModel):
    """A table whose rows a statement on `parent` reaches: a partition or an inheritance child."""

    model_config = ConfigDict(frozen=True)

    parent: Table
    child: Table
    partition: bool  # partitions are reached by foreign-key actions too, inheritance children not


class Trigger(BaseModel):
    """An enabled, user-defined trigger (foreign keys' own internal triggers are not listed)."""

    model_config = ConfigDict(frozen=True)

    name: str
    table: Table
    events: tuple[RowEvent, ...]
    function: str  # the function it calls, for the message


class Rule(BaseModel):
    """An enabled rewrite rule (`CREATE RULE … ON DELETE`), other than a view's own."""

    model_config = ConfigDict(frozen=True)

    name: str
    table: Table
    event: RowEvent


class EventTrigger(BaseModel):
    """An enabled event trigger: it runs code on DDL, whatever table it touches."""

    model_config = ConfigDict(frozen=True)

    name: str
    event: str  # ddl_command_start, ddl_command_end, sql_drop, table_rewrite
    tags: tuple[str, ...] = ()  # WHEN TAG IN (…); empty: every command
    function: str = ""


class Code(BaseModel):
    """A function PostgreSQL would run for the rollback, as the catalog has it.

    `builtin` is the catalog's answer to "does this code ship with PostgreSQL?": a function of
    pg_catalog created with the server itself (an oid below 16384, FirstNormalObjectId), so
    neither a function added to pg_catalog later nor an extension's function counts.
    """

    model_config = ConfigDict(frozen=True)

    function: str  # schema-qualified with its argument types: public.safe_pick()
    builtin: bool
    volatility: Volatility

    def identity(self) -> str:
        """What the plan hash covers of it."""
        return f"{self.function}|{self.builtin}|{self.volatility}"


class Via(BaseModel):
    """How a name in an expression can lead to code: `operator public.===(integer, integer)`."""

    model_config = ConfigDict(frozen=True)

    what: str
    code: Code

    def identity(self) -> str:
        """What the plan hash covers of it."""
        return f"{self.what}|{self.code.identity()}"


RelKind = Literal["r", "p", "m", "v", "f", "S", "c", "i", "I", "t"]
HookKind = Literal[
    "column default",
    "generated column",
    "CHECK constraint",
    "domain constraint",
    "index",
    "policy",
    "foreign table",
]


class Relation(BaseModel):
    """A relation a statement's expressions read (FROM, USING, subqueries, joins)."""

    model_config = ConfigDict(frozen=True)

    statement: int  # Statement.number
    written: str  # as the statement names it
    oid: int | None = None  # None: the database has no such relation
    name: str | None = None
    kind: RelKind | None = None  # pg_class.relkind
    code: tuple[Code, ...] = ()  # what a view's query calls that PostgreSQL does not ship
    foreign: tuple[str, ...] = ()  # foreign tables among its partitions and inheritance children

    def identity(self) -> str:
        """What the plan hash covers of it."""
        code = ",".join(c.identity() for c in self.code)
        return f"{self.statement}|{self.written}|{self.oid}|{self.kind}|{code}|{self.foreign}"


class Hook(BaseModel):
    """Code PostgreSQL runs on a table's rows besides triggers and rules, with what it calls.

    Only hooks that call something other than PostgreSQL's own IMMUTABLE or STABLE functions
    are read (and foreign tables, whose wrapper is code): the rest cannot reach outside the
    transaction.
    """

    model_config = ConfigDict(frozen=True)

    table: Table
    kind: HookKind
    name: str  # the constraint, index, policy or column
    column: str | None = None  # defaults, generated columns, domain constraints: the column
    applies: bool = True  # policies: row-level security is active for rollbot's role there
    code: tuple[Code, ...] = ()

    def identity(self) -> str:
        """What the plan hash covers of it."""
        code = ",".join(c.identity() for c in self.code)
        return f"{self.table.oid}|{self.kind}|{self.name}|{self.column}|{self.applies}|{code}"


class Facts(BaseModel):
    """Everything the planner needs from the live database."""

    model_config = ConfigDict(frozen=True)

    target: Target
    objects: tuple[Found, ...]
    # What each statement's `creates` names, resolved now: one that is the very object an
    # earlier statement drops (same oid) is put back by the runbook, so need not be gone.
    recreated: tuple[Found, ...] = ()
    references: tuple[Reference, ...] = ()
    rows: tuple[RowCount, ...] = ()
    counted: tuple[Table, ...] = ()  # tables the runbook's front matter asks to count
    missing_counted: tuple[str, ...] = ()  # ... of which these do not exist
    # Each function the statements call, by the name written: its volatility, or None when the
    # database has no such function. Of several overloads, the most volatile counts.
    functions: dict[str, Volatility | None] = Field(default_factory=dict)
    # What changes rows besides the statements themselves, around the tables they change:
    # foreign-key actions and descendants reachable from them, the triggers and rules on every
    # table reached, and the database's event triggers.
    foreign_keys: tuple[ForeignKey, ...] = ()
    descendants: tuple[Descendant, ...] = ()
    triggers: tuple[Trigger, ...] = ()
    rules: tuple[Rule, ...] = ()
    event_triggers: tuple[EventTrigger, ...] = ()
    # Code PostgreSQL would run that the runbook does not spell out as a call: for each function
    # name, the user-defined functions it may resolve to; the relations the expressions read;
    # for each operator name and cast target, the user-defined code they may run; casts the
    # server applies by itself; and the hooks (defaults, constraints, indexes, policies) on the
    # tables whose rows change and those the expressions read.
    user_functions: dict[str, tuple[Code, ...]] = Field(default_factory=dict)
    relations: tuple[Relation, ...] = ()
    operators: dict[str, tuple[Via, ...]] = Field(default_factory=dict)
    casts: dict[str, tuple[Via, ...]] = Field(default_factory=dict)
    implicit_casts: tuple[Via, ...] = ()
    hooks: tuple[Hook, ...] = ()
    counted_not_tables: tuple[str, ...] = ()  # front matter `count` names: "public.v (view)"
    nulls: tuple[NullCount, ...] = ()  # NULL rows of the columns SET NOT NULL is applied to
    violations: tuple[ViolationCount, ...] = ()  # rows violating the constraints validated
    # Tables whose rows a cast back rewrites, with the statement casting: PostgreSQL rebuilds
    # their indexes and checks their constraints again, running whatever code those call.
    rewritten: tuple[tuple[int, Table], ...] = ()
    # (statement, table oid, attnum) of the columns statements give another type: from that
    # statement on, the column and its default no longer depend on the old type.
    retyped: tuple[tuple[int, int, int], ...] = ()
    # The sequences ALTER SEQUENCE statements change, read before approval.
    sequences: tuple[SequenceState, ...] = ()
    unfit: tuple[UnfitCount, ...] = ()  # rows that the types columns are cast back to do not hold
    # Foreign keys between a dropped table and a table that stays, with their definitions, and
    # the dropped tables' size on disk: what a quarantined rollback drops, keeps and holds.
    quarantine_keys: tuple[KeptKey, ...] = ()
    quarantine_bytes: int | None = None
    # Dropped tables a move cannot take whole: partitioned tables, partitions, inheritance
    # parents and children (SET SCHEMA moves one table, never its partitions or children).
    quarantine_unmovable: tuple[str, ...] = ()
    # Schemas already named like a quarantine: the one this rollback would create must not
    # be among them, or CREATE SCHEMA would fail only once the rollback runs.
    quarantine_schemas: tuple[str, ...] = ()

    def found(self, statement: int, position: int) -> Found:
        """The facts for one object of one statement."""
        for item in self.objects:
            if item.statement == statement and item.position == position:
                return item
        msg = f"no facts for statement {statement} object {position}"
        raise KeyError(msg)
