"""Reading a Drizzle migrations folder: the parts that need no database."""

from __future__ import annotations

import hashlib
import importlib.resources
import json
from typing import TYPE_CHECKING

import pytest

from bot.core.errors import NotFoundError, RollbotError
from bot.drizzle import folder as drizzle
from demo.sample import MIGRATIONS_DIR as SAMPLE_MIGRATIONS

if TYPE_CHECKING:
    from pathlib import Path

MIGRATIONS_DIR = SAMPLE_MIGRATIONS


def _folder(tmp_path: Path, entries: list[object], files: dict[str, bytes]) -> Path:
    (tmp_path / "meta").mkdir()
    journal = {"version": "7", "dialect": "postgresql", "entries": entries}
    (tmp_path / "meta" / "_journal.json").write_text(json.dumps(journal))
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    return tmp_path


def test_sample_folder_lives_with_the_demo_not_the_product() -> None:
    """The sample journal and migrations are demo data: beside the demo, absent from `bot`."""
    assert not (importlib.resources.files("bot") / "fixtures").is_dir()
    folder = importlib.resources.files("demo") / "fixtures" / "asset_forge"
    assert (folder / "meta" / "_journal.json").is_file()
    assert (folder / "0022_confused_captain_cross.sql").is_file()
    assert (folder / "0023_loud_shen.sql").is_file()


def test_journal_order_and_timestamps_are_read() -> None:
    """Migrations come back in journal order with the journal's `when`."""
    migrations = drizzle.read_migrations(MIGRATIONS_DIR)
    assert [m.tag for m in migrations] == ["0022_confused_captain_cross", "0023_loud_shen"]
    assert migrations[0].when < migrations[1].when


def test_hash_is_sha256_of_the_file_bytes() -> None:
    """The journal hash is Drizzle's: hex sha256 of the whole file as stored."""
    for migration in drizzle.read_migrations(MIGRATIONS_DIR):
        raw = (MIGRATIONS_DIR / f"{migration.tag}.sql").read_bytes()
        assert migration.hash == hashlib.sha256(raw).hexdigest()


def test_crlf_files_keep_their_hash(tmp_path: Path) -> None:
    """Line endings are not normalised, since Drizzle hashes the file untouched."""
    content = b'CREATE TABLE "a" (id int);\r\n--> statement-breakpoint\r\nSELECT 1;\r\n'
    folder = _folder(tmp_path, [{"tag": "0001_a", "when": 5}], {"0001_a.sql": content})
    (migration,) = drizzle.read_migrations(folder)
    assert migration.hash == hashlib.sha256(content).hexdigest()
    assert len(migration.statements) == 2


def test_statements_are_cut_at_every_breakpoint() -> None:
    """Each breakpoint marker separates two statements and none is lost or blank."""
    for migration in drizzle.read_migrations(MIGRATIONS_DIR):
        markers = migration.text.count(drizzle.BREAKPOINT)
        assert len(migration.statements) == markers + 1
        assert all(s.strip().endswith(";") for s in migration.statements)


def test_select_upto_stops_at_the_matching_tag() -> None:
    """`upto` is a tag prefix and includes the migration it names."""
    migrations = drizzle.read_migrations(MIGRATIONS_DIR)
    assert [m.tag for m in drizzle.select_upto(migrations, "0022")] == [
        "0022_confused_captain_cross"
    ]
    assert len(drizzle.select_upto(migrations, "0023_loud")) == 2


def test_select_upto_unknown_tag_names_the_known_ones() -> None:
    """An unknown tag is refused with the tags the journal does list."""
    migrations = drizzle.read_migrations(MIGRATIONS_DIR)
    with pytest.raises(NotFoundError, match="0023_loud_shen"):
        drizzle.select_upto(migrations, "0099")


def test_malformed_entry_is_reported_with_the_journal_path(tmp_path: Path) -> None:
    """A journal entry without an integer `when` is refused, naming the journal file."""
    folder = _folder(tmp_path, [{"tag": "0001_a", "when": "soon"}], {"0001_a.sql": b"SELECT 1;"})
    with pytest.raises(RollbotError, match=r"_journal\.json"):
        drizzle.read_migrations(folder)


def test_missing_sql_file_is_reported(tmp_path: Path) -> None:
    """A journal entry whose file is gone is refused, naming that file."""
    folder = _folder(tmp_path, [{"tag": "0001_a", "when": 5}], {})
    with pytest.raises(RollbotError, match=r"0001_a\.sql"):
        drizzle.read_migrations(folder)
