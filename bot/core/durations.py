"""Durations as people write them in settings and front matter: `3s`, `500ms`, `30min`."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {
    "ms": 0.001,
    "s": 1.0,
    "sec": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
}
_MINUTE_MS = 60_000
_PATTERN = re.compile(r"^\s*(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[a-z]*)\s*$")


def parse_duration(value: str | float) -> timedelta:
    """Seconds as a number, or a number with a unit (ms, s, min, h)."""
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    match = _PATTERN.match(value.lower())
    if match is None or match["unit"] not in {"", *_UNITS}:
        msg = f"{value!r} is not a duration; write e.g. 3s, 500ms, 30min or 1h"
        raise ValueError(msg)
    return timedelta(seconds=float(match["number"]) * _UNITS.get(match["unit"], 1.0))


def format_duration(value: timedelta) -> str:
    """The shortest exact way to say a duration, for messages and for SET LOCAL."""
    milliseconds = round(value.total_seconds() * 1000)
    if milliseconds % _MINUTE_MS == 0 and milliseconds >= _MINUTE_MS:
        return f"{milliseconds // _MINUTE_MS}min"
    if milliseconds % 1000 == 0:
        return f"{milliseconds // 1000}s"
    return f"{milliseconds}ms"
