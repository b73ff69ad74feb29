"""How backups are compressed: the setting as people write it, and what a pg_dump can do.

pg_dump 16 learnt `--compress=lz4` and `zstd`; older ones compress with gzip only, at levels
0-9. The setting names a method (and level), and a pg_dump that lacks the method falls back to
gzip at level 1, the fastest compressing level, rather than failing the backup.
"""

from __future__ import annotations

import re
from typing import NamedTuple

DEFAULT = "gzip:1"
FALLBACK = "gzip:1"
_NEW_METHODS_SINCE = 16
_PATTERN = re.compile(r"^(?P<method>none|gzip|lz4|zstd)(?::(?P<level>\d{1,2}))?$|^(?P<bare>\d)$")
_LEVELS = {"gzip": range(10), "lz4": range(13), "zstd": range(1, 23), "none": range(1)}


class Compression(NamedTuple):
    """The method a backup is written with, and the pg_dump argument that asks for it."""

    method: str  # none, gzip, lz4, zstd
    level: int | None

    def label(self) -> str:
        """`gzip:1`, `none`: how the setting and the stored backup say it."""
        if self.method == "none" or self.level is None:
            return self.method
        return f"{self.method}:{self.level}"


def parse_compression(value: str) -> Compression:
    """`gzip:1`, `lz4`, `zstd:3`, `none`, or a bare gzip level `0`-`9` as pg_dump -Z reads it."""
    match = _PATTERN.match(value.strip().lower())
    if match is None:
        msg = f"{value!r} is not a compression; write none, gzip:1 (levels 0-9), lz4 or zstd:3"
        raise ValueError(msg)
    if match["bare"] is not None:
        bare = int(match["bare"])
        return Compression("none", None) if bare == 0 else Compression("gzip", bare)
    method, level_text = match["method"], match["level"]
    level: int | None = int(level_text) if level_text is not None else None
    if level is not None and level not in _LEVELS[method]:
        allowed = _LEVELS[method]
        msg = f"{value!r}: {method} levels are {allowed.start}-{allowed.stop - 1}"
        raise ValueError(msg)
    if method == "gzip" and level == 0:
        return Compression("none", None)
    return Compression(method, level)


def for_pg_dump(wanted: Compression, major: int) -> tuple[Compression, list[str]]:
    """What this pg_dump will use for `wanted`, and its argument; older ones fall back to gzip."""
    used = wanted
    if wanted.method in {"lz4", "zstd"} and major < _NEW_METHODS_SINCE:
        used = parse_compression(FALLBACK)
    if used.method == "none":
        return used, ["--compress=0"]
    if major < _NEW_METHODS_SINCE:
        return used, [f"--compress={used.level if used.level is not None else 6}"]
    return used, [f"--compress={used.label()}"]
