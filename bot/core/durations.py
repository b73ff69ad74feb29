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
    "d": 86400.0,
}
_MINUTE_MS = 60_000
_PATTERN = re.compile(r"^\s*(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[a-z]*)\s*$")


def parse_duration(value: str | float) -> timedelta:
    """Seconds as a number, or a number with a unit (ms, s, min, h, d)."""
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    match = _PATTERN.match(value.lower())
    if match is None or match["unit"] not in {"", *_UNITS}:
        msg = f"{value!r} is not a duration; write e.g. 3s, 500ms, 30min or 1h"
        raise ValueError(msg)
    return timedelta(seconds=float(match["number"]) * _UNITS.get(match["unit"], 1.0))


def parse_timeout(value: str | float) -> timedelta:
    """A timeout PostgreSQL will honour: at least one millisecond.

    PostgreSQL and libpq read a timeout of 0 as "wait forever", so `lock_timeout: 0` (or a value
    that rounds to 0 ms) would let a rollback stall the application without bound; it is refused
    rather than shown as "at most 0 s".
    """
    duration = parse_duration(value)
    if round(duration.total_seconds() * 1000) < 1:
        msg = (
            f"{value!r} is no timeout: PostgreSQL reads 0 as 'wait forever'; "
            "give a positive duration such as 3s or 500ms"
        )
        raise ValueError(msg)
    return duration


def coerce_timeout(value: object) -> object:
    """For validators: text, a number or a timedelta checked as a timeout; the rest unchanged."""
    if isinstance(value, timedelta):
        value = value.total_seconds()
    return parse_timeout(value) if isinstance(value, str | int | float) else value


def format_duration(value: timedelta) -> str:
    """The shortest exact way to say a duration, for messages and for SET LOCAL."""
    milliseconds = round(value.total_seconds() * 1000)
    if milliseconds % _MINUTE_MS == 0 and milliseconds >= _MINUTE_MS:
        return f"{milliseconds // _MINUTE_MS}min"
    if milliseconds % 1000 == 0:
        return f"{milliseconds // 1000}s"
    return f"{milliseconds}ms"
