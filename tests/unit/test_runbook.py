"""Runbooks are read as a reader sees them; a broken one says file, line, problem and fix."""

from datetime import timedelta
from pathlib import Path

import pytest

from bot.core.errors import NotFoundError, RollbotError, RunbookError
from bot.core.library import ParsedRunbooks, load_library
from bot.core.runbook import parse_runbook

SEED = Path(__file__).parents[2] / "runbooks" / "0023_loud_shen.md"
GOOD = """# Rollback

**Migration File**: `0024_brave_wolf.sql`
**Description**: Add wolves

## Quick Rollback

```sql
BEGIN;
DROP TABLE IF EXISTS wolves;
COMMIT;
```
"""


def test_seed_runbook_is_read_unmodified() -> None:
    """The seed guide yields its migration, metadata, 54 statements, queries and history."""
    runbook = parse_runbook(SEED.read_text(), file="runbooks/0023_loud_shen.md")
    assert (runbook.migration_id, runbook.name, runbook.migration_file) == (
        "0023",
        "0023_loud_shen",
        "0023_loud_shen.sql",
    )
    assert runbook.date == "2025-11-13"
    assert runbook.description == "Add generation pipelines, asset variants, and API errors schemas"
    kinds = [s.kind for s in runbook.statements]
    assert kinds.count("DROP INDEX") == 34
    assert kinds.count("ALTER TABLE … DROP CONSTRAINT") == 10
    assert kinds.count("DROP TABLE") == 6
    assert kinds.count("DROP TYPE") == 4
    assert runbook.statements[0].line == 21
    assert [q for _, q in runbook.verify_queries] == [
        "SELECT COUNT(*) FROM generation_pipelines",
        "SELECT COUNT(*) FROM asset_variants",
        "SELECT COUNT(*) FROM api_errors",
    ]
    assert [(h.migration, h.status) for h in runbook.history] == [
        ("0023_loud_shen.sql", "Current"),
        ("0022_confused_captain_cross.sql", "Applied"),
    ]


def test_front_matter_carries_settings() -> None:
    """Front matter may set tables to count and timeouts."""
    text = "---\ncount: [users]\nlock_timeout: 500ms\n---\n" + GOOD
    runbook = parse_runbook(text, file="0024_brave_wolf.md")
    assert runbook.settings.count == ("users",)
    assert runbook.settings.lock_timeout == timedelta(milliseconds=500)


@pytest.mark.parametrize("value", ["0", "0s", "0ms", "0.0001s"])
@pytest.mark.parametrize("key", ["lock_timeout", "statement_timeout"])
def test_a_zero_timeout_in_front_matter_is_refused_not_ignored(key: str, value: str) -> None:
    """`lock_timeout: 0` means "wait forever" to PostgreSQL: refused, never silently defaulted."""
    with pytest.raises(RunbookError) as caught:
        parse_runbook(f"---\n{key}: {value}\n---\n" + GOOD, file="0024_brave_wolf.md")
    assert key in caught.value.render()
    assert "wait forever" in caught.value.render()


def test_unknown_front_matter_key_is_named() -> None:
    """A typo in front matter is refused with the allowed keys listed."""
    with pytest.raises(RunbookError) as caught:
        parse_runbook("---\nlock_timout: 1s\n---\n" + GOOD, file="0024_brave_wolf.md")
    assert "lock_timout" in caught.value.render()
    assert "Allowed keys are migration, count" in caught.value.render()


@pytest.mark.parametrize(
    ("text", "problem", "line"),
    [
        ("", "the runbook is empty", None),
        ("# Guide\n\n## Quick Rollback\n\nJust drop it.\n", "no ```sql block", None),
        (
            GOOD + "\n## Rollback\n\n```sql\nDROP TABLE x;\n```\n",
            "2 ```sql blocks",
            16,
        ),
        (GOOD.replace("DROP TABLE IF", "DROP TABEL IF"), "syntax error", 10),
        (GOOD.replace("DROP TABLE IF EXISTS wolves", "VACUUM wolves"), "transaction block", 10),
        (GOOD.replace("DROP TABLE IF EXISTS wolves", "TRUNCATE users"), "may run", 10),
    ],
)
def test_broken_runbooks_are_explained(text: str, problem: str, line: int | None) -> None:
    """Each broken runbook names the file, the line, what is wrong and what to do."""
    with pytest.raises(RunbookError) as caught:
        parse_runbook(text, file="runbooks/0024_brave_wolf.md")
    error = caught.value
    assert error.file == "runbooks/0024_brave_wolf.md"
    assert error.line == line
    assert problem in error.problem
    assert error.todo


def test_file_name_and_text_must_agree() -> None:
    """A runbook whose file says 0025 but whose text says 0024 is refused."""
    with pytest.raises(RunbookError, match="file name says migration 0025"):
        parse_runbook(GOOD, file="0025_other.md")


def test_library_lookup_accepts_number_short_number_and_name(tmp_path: Path) -> None:
    """`0023`, `23` and `0023_loud_shen` all find the seed runbook."""
    (tmp_path / "0023_loud_shen.md").write_text(SEED.read_text())
    (tmp_path / "README.md").write_text("# how to write one\n")
    library = load_library(tmp_path)
    assert [library.find(q).name for q in ("0023", "23", "0023_loud_shen")] == [
        "0023_loud_shen"
    ] * 3


def test_library_miss_suggests(tmp_path: Path) -> None:
    """An unknown or hostile id is refused with the known runbooks and a suggestion."""
    (tmp_path / "0023_loud_shen.md").write_text(SEED.read_text())
    library = load_library(tmp_path)
    with pytest.raises(NotFoundError, match="Did you mean 0023"):
        library.find("0032")
    with pytest.raises(NotFoundError, match="is not a migration id") as caught:
        library.find("0023; DROP TABLE users")
    assert "DROP TABLE users" in caught.value.render()


def test_broken_runbook_is_listed_and_explained_on_lookup(tmp_path: Path) -> None:
    """A broken runbook does not hide the others, and asking for it says why it is broken."""
    (tmp_path / "0023_loud_shen.md").write_text(SEED.read_text())
    (tmp_path / "0024_brave_wolf.md").write_text("# nothing here\n")
    library = load_library(tmp_path)
    assert [r.name for r in library.runbooks] == ["0023_loud_shen"]
    assert [b.migration_id for b in library.broken] == ["0024"]
    with pytest.raises(RollbotError, match="is broken"):
        library.find("24")


def test_a_parsed_library_parses_again_only_the_files_that_changed(tmp_path: Path) -> None:
    """`serve` keeps its runbooks parsed: an unchanged file is not re-read, an edited one is."""
    seed = tmp_path / "0023_loud_shen.md"
    seed.write_text(SEED.read_text())
    (tmp_path / "0024_brave_wolf.md").write_text("# nothing here\n")
    parsed = ParsedRunbooks()
    first = load_library(tmp_path, parsed)
    again = load_library(tmp_path, parsed)
    assert again.runbooks[0] is first.runbooks[0]  # the same object: not parsed again
    assert [b.migration_id for b in again.broken] == ["0024"]

    (tmp_path / "0024_brave_wolf.md").write_text(GOOD)  # fixed
    seed.write_text(SEED.read_text() + "\nEdited after it was first read.\n")
    edited = load_library(tmp_path, parsed)
    assert [r.name for r in edited.runbooks] == ["0024_brave_wolf", "0023_loud_shen"]
    assert edited.broken == ()
    assert edited.runbooks[1] is not first.runbooks[0]
    assert edited.runbooks[1].sha256 != first.runbooks[0].sha256  # plans made before are void


def test_a_cascade_runbook_is_listed_blocked_not_healthy(tmp_path: Path) -> None:
    """`rollbot runbooks` and `/rollback list` name a CASCADE runbook as blocked, with its line."""
    from bot.core.plan import blocked_runbooks  # noqa: PLC0415 - the function under test
    from bot.core.text import runbooks_text  # noqa: PLC0415 - the function under test

    (tmp_path / "0024_brave_wolf.md").write_text(GOOD)
    cascade = GOOD.replace("0024_brave_wolf", "0025_calm_owl").replace(
        "DROP TABLE IF EXISTS wolves;", "DROP TABLE IF EXISTS owls CASCADE;"
    )
    (tmp_path / "0025_calm_owl.md").write_text(cascade)
    library = load_library(tmp_path)
    blocked = blocked_runbooks(library)
    assert list(blocked) == [next(r.file for r in library.runbooks if r.migration_id == "0025")]
    text = runbooks_text(library)
    healthy, _, rest = text.partition("BLOCKED")
    assert "0024" in healthy
    assert "0025" not in healthy
    assert "CASCADE would drop objects the runbook does not name" in rest
