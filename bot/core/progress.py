"""A backup's progress: bytes written against what the catalog expects, and when to say so.

pg_dump cannot tell how far it is; rollbot counts the bytes it copies from pg_dump's stdout and
compares them with the size the catalog gives the tables whose rows are dumped. Compression
makes the file smaller than the tables, so the figure is an upper bound, shown as such, and the
fraction is capped below 100 % until the backup has ended.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict

from bot.core.texts import size

SLACK_INTERVAL = timedelta(seconds=5)
_CAP = 0.99


class Progress(BaseModel):
    """Bytes of the backup written so far, and the catalog's size of the rows it dumps."""

    model_config = ConfigDict(frozen=True)

    written: int
    expected: int  # 0 when the catalog knows no size (empty tables)

    def fraction(self) -> float | None:
        """How far along, 0 to 0.99, or None without an expected size."""
        if self.expected <= 0:
            return None
        return min(self.written / self.expected, _CAP)

    def label(self) -> str:
        """`12.0 MB written (at most ~40.0 MB: the tables' size in the catalog)`."""
        if self.expected <= 0:
            return f"{size(self.written)} written"
        return f"{size(self.written)} written of at most ~{size(self.expected)} (the tables' size)"


def due(last: datetime | None, now: datetime, interval: timedelta = SLACK_INTERVAL) -> bool:
    """Whether another progress message may be stored: at most one per `interval`."""
    return last is None or now - last >= interval
