"""Reading client tool versions and ordering the places pg_dump is looked for."""

from pathlib import Path

import pytest

from bot.pgclient.embedded import embedded_bin_dir
from bot.pgclient.tools import (
    candidate_dirs,
    debian_bin_dirs,
    major_of,
    parse_tool_version,
    version_tuple,
)


@pytest.mark.parametrize(
    ("output", "version"),
    [
        ("pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)\n", "15.20"),
        ("pg_dump (PostgreSQL) 16.2\n", "16.2"),
        ("pg_dump (PostgreSQL) 17beta1\n", "17beta1"),
        ("pg_dump (PostgreSQL) 18devel", "18devel"),
        ("pg_dump (PostgreSQL) 14.10 (Ubuntu 14.10-1.pgdg22.04+1)", "14.10"),
        ("pg_dump (PostgreSQL) 9.6.24", "9.6.24"),
    ],
)
def test_parse_tool_version_reads_the_release(output: str, version: str) -> None:
    """The version is taken from the third field whatever distribution suffix follows."""
    assert parse_tool_version(output, "pg_dump") == version


@pytest.mark.parametrize(
    "output",
    ["psql (PostgreSQL) 15.20", "", "GNU bash, version 5.2.15", "pg_dump (PostgreSQL) beta"],
)
def test_parse_tool_version_rejects_other_programs(output: str) -> None:
    """Output of another program (or none) is not mistaken for pg_dump's."""
    with pytest.raises(ValueError, match="not pg_dump"):
        parse_tool_version(output, "pg_dump")


@pytest.mark.parametrize(
    ("version", "parts", "major"),
    [
        ("15.20", (15, 20), 15),
        ("16.2", (16, 2), 16),
        ("17beta1", (17,), 17),
        ("18devel", (18,), 18),
        ("9.6.24", (9, 6, 24), 9),
    ],
)
def test_version_tuple_and_major(version: str, parts: tuple[int, ...], major: int) -> None:
    """Versions compare numerically and pre-releases count as their major."""
    assert version_tuple(version) == parts
    assert major_of(version) == major


def test_version_tuple_orders_numerically() -> None:
    """15.20 is newer than 15.3, which string comparison would get wrong."""
    assert version_tuple("15.20") > version_tuple("15.3")


def test_version_tuple_rejects_garbage() -> None:
    """A string without a leading number is not a version."""
    with pytest.raises(ValueError, match="not a PostgreSQL version"):
        version_tuple("beta")


def test_pg_bin_is_the_only_candidate(tmp_path: Path) -> None:
    """An explicit ROLLBOT_PG_BIN is the only directory looked at."""
    assert candidate_dirs(tmp_path, "/usr/bin:/bin") == [tmp_path]


def test_candidates_follow_path_then_debian_then_embedded(tmp_path: Path) -> None:
    """PATH entries come first in order, then Debian's directories, the embedded one last."""
    dirs = candidate_dirs(None, f"{tmp_path}::/usr/bin:{tmp_path}")
    assert dirs[:2] == [tmp_path, Path("/usr/bin")]
    assert dirs[2 : 2 + len(debian_bin_dirs())] == debian_bin_dirs()
    embedded = embedded_bin_dir()
    if embedded is not None:
        assert dirs[-1] == embedded
    assert Path() not in dirs


def test_debian_dirs_are_newest_first(tmp_path: Path) -> None:
    """Version directories sort numerically, newest first, ignoring non-version names."""
    for name in ["9.6", "15", "16", "common", "10"]:
        (tmp_path / name / "bin").mkdir(parents=True)
    dirs = debian_bin_dirs(tmp_path)
    assert [d.parent.name for d in dirs] == ["16", "15", "10", "9.6"]
