"""Small statistics for benchmark samples: nearest-rank percentiles, medians, ratios."""

from __future__ import annotations

import math
import statistics
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from collections.abc import Sequence

# A read slower than this waited on a lock rather than on the disk or the CPU.
STALL_S = 0.1


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile: the smallest sample with at least `fraction` at or below it."""
    if not values:
        raise ValueError("no samples")
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    ordered = sorted(values)
    return ordered[max(math.ceil(fraction * len(ordered)) - 1, 0)]


def median(values: Sequence[float]) -> float:
    """The median of a non-empty sample."""
    if not values:
        raise ValueError("no samples")
    return float(statistics.median(values))


def ratio(numerator: float, denominator: float) -> float:
    """The ratio numerator / denominator, infinite when the denominator is zero."""
    return numerator / denominator if denominator > 0 else math.inf


class Latencies(BaseModel):
    """What readers saw: how many reads, and how slow the slow ones were."""

    model_config = ConfigDict(frozen=True)

    reads: int
    worst_s: float
    p99_s: float
    p50_s: float
    stalled: int  # reads slower than STALL_S
    stalled_s: float  # the time those reads spent waiting, summed over all readers

    @classmethod
    def of(cls, samples: Sequence[float]) -> Latencies:
        """Summarise read latencies in seconds."""
        return cls(
            reads=len(samples),
            worst_s=max(samples),
            p99_s=percentile(samples, 0.99),
            p50_s=percentile(samples, 0.50),
            stalled=sum(1 for s in samples if s > STALL_S),
            stalled_s=sum(s for s in samples if s > STALL_S),
        )
