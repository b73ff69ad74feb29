"""How the README's example outputs are compared with what the commands really print.

An example is only worth showing if it is what a reader will see, so the test runs the command
and compares; but a real output carries figures no two runs share. They are compared by shape,
never dropped: each pattern below replaces one kind of varying figure, on both sides, with the
same placeholder, so the README can show a believable value (`0.2 s`, `2026-12-02 08:13`) and
the line around it is still compared word for word.

Values that belong to the test's machine rather than to the reader's (the scratch database's
name, the test's server, its working directory, its role) are first replaced in the real output
by the README's own words for them (`asset_forge`, `db.internal:5432`, `/srv/rollbot`,
`rollbot`): `normalise(..., stand_ins)`.

A whole output is often too long to read in a README. A line holding only `…` in an example
stands for any number of lines (none included) that the reader need not see; every other line
must still be there, in order.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

ELISION = "…"

# Varying figures in example output, compared by shape only. Order matters: a timestamp goes
# before the durations, a size before anything that reads its digits.
VARYING: tuple[tuple[re.Pattern[str], str], ...] = (
    # Versions of the server and client tools on the test's machine.
    (re.compile(r"PostgreSQL \d+\.\d+"), "PostgreSQL N"),
    (re.compile(r"pg_dump \d+\.\d+"), "pg_dump N"),
    # Wall-clock times, `2026-12-02 08:13`, `2026-12-02 08:13:41Z`, and the file names'
    # `20261202-081341`.
    (re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?Z?"), "TIME"),
    (re.compile(r"\b\d{8}-\d{6}\b"), "STAMP"),
    # Sizes (of dumps, of free disk) and how long a step took.
    (re.compile(r"\d+(\.\d+)? [kMGT]?B\b"), "SIZE"),
    (re.compile(r"\b\d+(\.\d+)? s\b"), "N s"),
    (re.compile(r"free in \S+"), "free in DIR"),
    # A plan's hash and a file's sha256 prefix: they cover the catalog's object ids.
    (re.compile(r"\b[0-9a-f]{16}\b"), "HASH"),
    # A quarantine is named after its migration and an object id of the database.
    (re.compile(r"\b(rollbot_quarantine_\d+)_\d+\b"), r"\1_OID"),
    # The OS user, host and pid the audit trail records for each event (`alice@bastion:4242`).
    (re.compile(r"[\w.-]+@[\w.-]+:\d+$", re.MULTILINE), "USER@HOST:PID"),
)


def normalise(text: str, stand_ins: Mapping[str, str] | None = None) -> str:
    """The text with the test's own values in the README's words and varying figures shaped.

    Runs of blanks are one space and each line is stripped: columns are aligned to the widest
    value, which is a varying figure too.
    """
    for value, word in sorted((stand_ins or {}).items(), key=lambda item: -len(item[0])):
        text = text.replace(value, word)
    for pattern, repl in VARYING:
        text = pattern.sub(repl, text)
    lines = [re.sub(r"[ \t]+", " ", line).strip() for line in text.splitlines()]
    return "\n".join(lines).strip()


def matches(shown: str, example: str) -> bool:
    """Whether the normalised output is the normalised example, an elision matching any lines."""
    parts = [
        r"(?:[^\n]*\n)*?" if line == ELISION else re.escape(line) + r"\n"
        for line in example.splitlines()
    ]
    return re.fullmatch("".join(parts), shown + "\n" if shown else "") is not None
