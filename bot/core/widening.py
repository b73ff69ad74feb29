"""Column type changes whose cast back is exact: which they are, and which rows would not fit.

A drizzle-kit `SET DATA TYPE` converts every value of the column. Most conversions lose
something on the way back (a rounded number, a cut string, a date that was a timestamp), but
a widening does not: every smallint is an integer, every varchar(50) a varchar(100), every
real a double precision, every numeric(10,2) a numeric(12,4) (no fewer digits on either side
of the point), every integer a numeric with room for its digits, every character(5) a
character(8), a varchar or a text (PostgreSQL strips a character's padding when it casts
it to a varchar and pads it again on the way back, and a character compares without its
padding, so the value is the same), and casting any of them back gives exactly the value
that was there. What a widening cannot promise is that rows written since still fit the old
type; `unfit_rule` says which test finds those rows, so that the plan counts them before
approval, as it counts the NULL rows SET NOT NULL would stop on.

Types are compared as PostgreSQL's `format_type` prints them (`character varying(50)`,
`integer`, `numeric(10,2)`), the way the schema at N-1 holds them. Only PostgreSQL's own
types are here, so the casts are PostgreSQL's own code; every other pair stays refused. A
varchar or text made a character is no widening: a value's trailing spaces would not come
back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

# The integer types by width, with the range a value must lie in to be cast back to them.
INTEGER_RANGES = {
    "smallint": (-32768, 32767),
    "integer": (-2147483648, 2147483647),
    "bigint": (-9223372036854775808, 9223372036854775807),
}
_INTEGERS = tuple(INTEGER_RANGES)
# The most digits an integer type's values have: a numeric with as many before the point
# holds every one of them.
_INTEGER_DIGITS = {"smallint": 5, "integer": 10, "bigint": 19}
_STRINGS = ("character varying", "text")
_FLOATS = ("real", "double precision")
# pglast's names for PostgreSQL's own types, to the names format_type prints.
_PARSER_NAMES = {
    "int2": "smallint",
    "int4": "integer",
    "int8": "bigint",
    "float4": "real",
    "float8": "double precision",
    "varchar": "character varying",
    "text": "text",
    "bpchar": "character",
    "numeric": "numeric",
}
_TYPE = re.compile(r"^(?P<name>[a-z ]+?)(?:\((?P<mods>\d+(?:,\d+)?)\))?$")


@dataclass(frozen=True)
class SqlType:
    """A built-in type as format_type prints it: `character varying` with (50,)."""

    name: str
    mods: tuple[int, ...] = ()

    def __str__(self) -> str:
        if not self.mods:
            return self.name
        return f"{self.name}({','.join(str(m) for m in self.mods)})"


Test = Literal["none", "range", "length", "padded", "real", "numeric", "integral"]


@dataclass(frozen=True)
class Unfit:
    """How to find the rows that would not survive the cast back to the old type.

    `none`: every value fits; `range`: an integer outside `low`..`high`; `length`: a string
    longer than `limit` characters (PostgreSQL would refuse it, or cut trailing spaces);
    `padded`: the same, or a varchar or text ending in spaces, which a character(n) holds
    as padding and so gives back without them;
    `real`: a double precision that a real does not hold exactly; `numeric`: a number with
    more than `scale` digits after the point (it would be rounded) or, rounded, `limit` or
    more before it, or an infinity; `integral`: a number with a fraction (it would be
    rounded), outside `low`..`high`, NaN or an infinity.
    """

    test: Test
    low: int = 0
    high: int = 0
    limit: int = 0
    scale: int = 0


def read_type(text: str | None) -> SqlType | None:
    """A format_type text as a SqlType, None when it is not one of the types here."""
    if text is None:
        return None
    found = _TYPE.match(text.strip())
    if found is None:
        return None
    name = found["name"]
    mods = tuple(int(m) for m in found["mods"].split(",")) if found["mods"] else ()
    if name not in (*_INTEGERS, *_STRINGS, *_FLOATS, "numeric", "character"):
        return None
    return SqlType(name, mods)


def parsed_type(names: tuple[str, ...], mods: tuple[int, ...]) -> SqlType | None:
    """A type as the parser names it (`pg_catalog.int8`, `varchar` with 100) as a SqlType."""
    if len(names) > 1 and names[:-1] != ("pg_catalog",):
        return None
    if not names:
        return None
    name = _PARSER_NAMES.get(names[-1])
    if name is None:
        return None
    if name == "numeric" and len(mods) == 1:
        mods = (mods[0], 0)  # numeric(p) is numeric(p,0), as format_type prints it
    return SqlType(name, mods)


def node_type(type_name: Any) -> SqlType | None:  # noqa: ANN401 - a pglast TypeName
    """The type a parsed statement names, None unless it is one of the types here (no array)."""
    if type_name is None or type_name.arrayBounds or type_name.setof or type_name.pct_type:
        return None
    mods: list[int] = []
    for mod in type_name.typmods or ():
        value = getattr(getattr(mod, "val", None), "ival", None)
        if not isinstance(value, int):
            return None
        mods.append(value)
    return parsed_type(tuple(str(n.sval) for n in type_name.names), tuple(mods))


def widens(old: SqlType, new: SqlType) -> bool:
    """Whether every value of `old` is a value of `new`, and casts back to itself exactly."""
    if old.name in (*_STRINGS, "character"):
        return _widens_string(old, new)
    if old.name in _FLOATS and new.name in _FLOATS:
        return _FLOATS.index(new.name) >= _FLOATS.index(old.name)
    return _widens_number(old, new)


def _widens_string(old: SqlType, new: SqlType) -> bool:  # noqa: PLR0911 - one answer per pair
    if old.name == "text":
        return new.name in _STRINGS and not new.mods
    if old.name == "character":
        if not old.mods:
            return False  # a blank-padded string of any length: not a type format_type prints
        if new.name == "character":
            return bool(new.mods) and new.mods[0] >= old.mods[0]
        return new.name in _STRINGS and (not new.mods or new.mods[0] >= old.mods[0])
    if new.name not in _STRINGS:
        return False
    if not old.mods:
        return not new.mods
    return not new.mods or new.mods[0] >= old.mods[0]


def _widens_number(old: SqlType, new: SqlType) -> bool:
    if old.name in _INTEGERS and new.name in _INTEGERS:
        return _INTEGERS.index(new.name) >= _INTEGERS.index(old.name)
    if old.name in _INTEGERS and new.name == "numeric":
        return not new.mods or new.mods[0] - new.mods[1] >= _INTEGER_DIGITS[old.name]
    if old.name != "numeric" or new.name != "numeric":
        return False
    if not old.mods or not new.mods:
        return not new.mods  # an unconstrained numeric holds every numeric
    (precision, scale), (wider, finer) = old.mods, new.mods
    return finer >= scale and wider - finer >= precision - scale


def unfit_rule(current: SqlType, old: SqlType) -> Unfit | None:  # noqa: PLR0911 - per family
    """The test for rows of a `current` column that would not cast back to `old` exactly.

    None when `current` is not a widening of `old`: then the rows are not counted, and the
    statement itself still fails on the first one that does not fit.
    """
    if not widens(old, current):
        return None
    if current == old:
        return Unfit("none")
    if old.name in INTEGER_RANGES:
        low, high = INTEGER_RANGES[old.name]
        if current.name == "numeric":
            return Unfit("integral", low=low, high=high)
        return Unfit("range", low=low, high=high)
    if old.name == "character" and current.name != "character":
        return Unfit("padded", limit=old.mods[0])
    if old.name in (*_STRINGS, "character"):
        return Unfit("length", limit=old.mods[0]) if old.mods else Unfit("none")
    if old.name in _FLOATS:
        return Unfit("real")
    precision, scale = old.mods
    return Unfit("numeric", limit=precision - scale, scale=scale)
