"""Runbooks: the Markdown rollback guides people already write, read as data.

A runbook is parsed with a real Markdown parser (markdown-it) so that code blocks, headings
and tables are found the way a reader sees them, with line numbers for every error. The seed
guide works unmodified: its "Current Migration" paragraph names the migration, the `sql` block
under "Quick Rollback" is the rollback, the `sql` block after "Verify data" holds the
verification queries, and the "Migration History" table is kept for the history view.
"""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from typing import Any

import yaml
from markdown_it import MarkdownIt
from mdit_py_plugins.front_matter import front_matter_plugin
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bot.core.durations import coerce_timeout
from bot.core.errors import RunbookError
from bot.core.sql import Statement, parse_queries, parse_statements

_MIGRATION_FILE = re.compile(r"^(?P<id>\d+)_[A-Za-z0-9_]+$")
_ROLLBACK_HEADINGS = ("quick rollback", "rollback")
_FORMAT_HELP = "see runbooks/README.md for the format"


class RunbookSettings(BaseModel):
    """Optional front matter: per-runbook overrides of the defaults."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    migration: str | None = None  # e.g. 0024_brave_wolf, when the text does not name it
    count: tuple[str, ...] = ()  # more tables whose row counts must not change
    lock_timeout: timedelta | None = None
    statement_timeout: timedelta | None = None
    target: str | None = None
    journal: bool = True  # delete the migration's Drizzle journal row with the rollback

    @field_validator("lock_timeout", "statement_timeout", mode="before")
    @classmethod
    def _timeout(cls, value: object) -> object:
        return coerce_timeout(value)


class HistoryRow(BaseModel):
    """A row of the runbook's "Migration History" table, as written."""

    model_config = ConfigDict(frozen=True)

    migration: str
    date: str
    description: str
    status: str


class Runbook(BaseModel):
    """Everything rollbot needs from one runbook file."""

    model_config = ConfigDict(frozen=True)

    file: str
    migration_id: str  # "0023"
    name: str  # "0023_loud_shen"
    migration_file: str  # "0023_loud_shen.sql"
    date: str | None = None
    description: str | None = None
    statements: tuple[Statement, ...]
    sql_line: int
    verify_queries: tuple[tuple[int, str], ...] = ()
    history: tuple[HistoryRow, ...] = ()
    settings: RunbookSettings = Field(default_factory=RunbookSettings)
    sha256: str
    derived: bool = False  # written by rollbot from the forward migration, not by a person


class _Block(BaseModel):
    """A fenced code block and the heading path above it."""

    info: str
    content: str
    line: int  # file line of the block's first content line
    section: str  # nearest heading, lower-cased
    label: str  # the bold label of the paragraph just before, lower-cased ("verify data")


def parse_runbook(text: str, *, file: str) -> Runbook:
    """Turn a runbook's Markdown into a `Runbook`, or explain precisely what is wrong."""
    if not text.strip():
        raise RunbookError(
            file, None, "the runbook is empty", todo=f"write the rollback guide; {_FORMAT_HELP}"
        )
    md = MarkdownIt("commonmark").enable("table").use(front_matter_plugin)
    tokens = md.parse(text)
    settings = _front_matter(tokens, file)
    fields = _labelled_fields(tokens)
    blocks = _code_blocks(tokens)
    name = _migration_name(settings, fields, file)

    rollback = [b for b in blocks if b.info == "sql" and b.section in _ROLLBACK_HEADINGS]
    if not rollback:
        raise RunbookError(
            file,
            None,
            'no ```sql block under a "Quick Rollback" heading',
            todo=f"add a '## Quick Rollback' section with one ```sql block; {_FORMAT_HELP}",
        )
    if len(rollback) > 1:
        lines = ", ".join(str(b.line - 1) for b in rollback)
        raise RunbookError(
            file,
            rollback[1].line - 1,
            f"{len(rollback)} ```sql blocks under the rollback heading (lines {lines})",
            todo="keep exactly one: rollbot would not know which one to run",
        )
    block = rollback[0]
    statements = parse_statements(block.content, file=file, first_line=block.line)
    verify = [b for b in blocks if b.info == "sql" and b.label.startswith("verify")]
    queries = (
        parse_queries(verify[0].content, file=file, first_line=verify[0].line) if verify else ()
    )
    return Runbook(
        file=file,
        migration_id=name.split("_", 1)[0],
        name=name,
        migration_file=f"{name}.sql",
        date=fields.get("date"),
        description=fields.get("description"),
        statements=statements,
        sql_line=block.line,
        verify_queries=queries,
        history=_history(tokens),
        settings=settings,
        sha256=hashlib.sha256(text.encode()).hexdigest(),
    )


def _front_matter(tokens: list[Any], file: str) -> RunbookSettings:
    for token in tokens:
        if token.type != "front_matter":
            continue
        try:
            data = yaml.safe_load(token.content) or {}
        except yaml.YAMLError as exc:
            raise RunbookError(
                file, 1, f"front matter is not valid YAML ({exc})", todo="fix the --- block"
            ) from exc
        if not isinstance(data, dict):
            raise RunbookError(
                file, 1, "front matter must be a mapping (key: value lines)", todo=_FORMAT_HELP
            )
        try:
            return RunbookSettings.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
            )
            allowed = ", ".join(RunbookSettings.model_fields)
            raise RunbookError(
                file,
                1,
                f"front matter: {problems}",
                todo=f"allowed keys are {allowed}",
            ) from exc
    return RunbookSettings()


def _labelled_fields(tokens: list[Any]) -> dict[str, str]:
    """`**Label**: value` lines anywhere in paragraphs, keyed by lower-cased label."""
    fields: dict[str, str] = {}
    for token in tokens:
        if token.type == "inline" and token.children:
            for line in _lines(token.children):
                label = _leading_label(line)
                if label is not None:
                    value = "".join(
                        c.content for c in line[3:] if c.type in {"text", "code_inline"}
                    )
                    fields.setdefault(label, value.strip().lstrip(":").strip())
    return fields


def _lines(children: list[Any]) -> list[list[Any]]:
    """Inline tokens split at line breaks, empty text tokens dropped."""
    lines: list[list[Any]] = [[]]
    for child in children:
        if child.type in {"softbreak", "hardbreak"}:
            lines.append([])
        elif not (child.type == "text" and not child.content):
            lines[-1].append(child)
    return lines


def _leading_label(line: list[Any]) -> str | None:
    """The bold text a line starts with (`**Verify data**:` -> "verify data"), if any."""
    if len(line) >= 3 and line[0].type == "strong_open" and line[1].type == "text":  # noqa: PLR2004
        return str(line[1].content).strip().lower()
    return None


def _code_blocks(tokens: list[Any]) -> list[_Block]:
    blocks: list[_Block] = []
    section = ""
    label = ""
    for index, token in enumerate(tokens):
        if token.type == "heading_open":
            section = tokens[index + 1].content.strip().lower()
            label = ""
        elif token.type == "inline" and token.children:
            label = _leading_label(_lines(token.children)[0]) or ""
        elif token.type == "fence" and token.map is not None:
            blocks.append(
                _Block(
                    info=token.info.strip().lower(),
                    content=token.content,
                    line=token.map[0] + 2,
                    section=section,
                    label=label,
                )
            )
    return blocks


def _migration_name(settings: RunbookSettings, fields: dict[str, str], file: str) -> str:
    named = settings.migration or fields.get("migration file") or ""
    named = named.strip().removesuffix(".sql")
    stem = file.rsplit("/", 1)[-1].removesuffix(".md")
    name = named or stem
    if not _MIGRATION_FILE.match(name):
        raise RunbookError(
            file,
            None,
            f"cannot tell which migration this runbook undoes (found {name!r})",
            todo="name the file like 0023_loud_shen.md, or write "
            "'**Migration File**: `0023_loud_shen.sql`' under '## Current Migration'",
        )
    if named and _MIGRATION_FILE.match(stem) and stem.split("_")[0] != name.split("_")[0]:
        raise RunbookError(
            file,
            None,
            f"the file name says migration {stem.split('_')[0]} but the text says {name}",
            todo="rename the file or fix the Migration File line so they agree",
        )
    return name


def _history(tokens: list[Any]) -> tuple[HistoryRow, ...]:
    rows: list[HistoryRow] = []
    in_history = False
    cells: list[str] = []
    in_body = False
    for index, token in enumerate(tokens):
        if token.type == "heading_open":
            in_history = "history" in tokens[index + 1].content.lower()
        elif not in_history:
            continue
        elif token.type == "tbody_open":
            in_body = True
        elif token.type == "tbody_close":
            in_body = False
        elif in_body and token.type == "tr_open":
            cells = []
        elif in_body and token.type == "inline":
            cells.append(token.content.strip())
        elif in_body and token.type == "tr_close" and len(cells) >= 4:  # noqa: PLR2004
            rows.append(
                HistoryRow(
                    migration=cells[0].strip("`"),
                    date=cells[1],
                    description=cells[2],
                    status=cells[3],
                )
            )
    return tuple(rows)
