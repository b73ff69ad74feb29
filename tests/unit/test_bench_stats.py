"""The benchmark's arithmetic and formatting: percentiles, latencies, the seed SQL, data sizes."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.__main__ import parse_args
from bench.dataset import STAGES_PER_PIPELINE, dropped_rows, rows_at
from bench.raw import seed_sql
from bench.report import duration, table
from bench.scale import Spread, Stream
from bench.stats import Latencies, median, percentile, ratio


def test_nearest_rank_percentiles() -> None:
    """p50 of 1..100 is 50, p99 is 99, p100 is the largest; order does not matter."""
    values = [float(v) for v in reversed(range(1, 101))]
    assert percentile(values, 0.50) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 1.0) == 100.0
    assert percentile([7.0], 0.5) == 7.0


@given(st.lists(st.floats(min_value=0, max_value=1e6), min_size=1))
def test_percentile_is_one_of_the_samples(values: list[float]) -> None:
    """A nearest-rank percentile never interpolates: it is always an observed value."""
    assert percentile(values, 0.99) in values
    assert min(values) <= percentile(values, 0.5) <= max(values)


def test_empty_samples_and_bad_fractions_are_refused() -> None:
    """No samples, or a fraction outside (0, 1], is a bug in the caller, not a zero."""
    with pytest.raises(ValueError, match="no samples"):
        percentile([], 0.5)
    with pytest.raises(ValueError, match="no samples"):
        median([])
    with pytest.raises(ValueError, match="fraction"):
        percentile([1.0], 0.0)


def test_latencies_count_stalled_reads_and_their_time() -> None:
    """Reads over 100 ms are stalled; their waiting time is summed."""
    summary = Latencies.of([0.001, 0.002, 0.5, 1.5])
    assert summary.reads == 4
    assert summary.worst_s == 1.5
    assert summary.stalled == 2
    assert summary.stalled_s == pytest.approx(2.0)


def test_ratio_of_a_zero_denominator_is_infinite() -> None:
    """A side that took no time makes the ratio infinite rather than raising."""
    assert ratio(3.0, 1.5) == 2.0
    assert math.isinf(ratio(1.0, 0.0))


def test_durations_read_naturally() -> None:
    """Sub-10 ms with two decimals, ms up to a second, then seconds."""
    assert duration(0.00024) == "0.24 ms"
    assert duration(0.0052) == "5.20 ms"
    assert duration(0.558) == "558 ms"
    assert duration(7.97) == "7.97 s"
    assert duration(31.94) == "31.9 s"


def test_table_pads_columns_but_not_the_last() -> None:
    """Columns line up; the free-text last column is not padded."""
    text = table(["a", "bb", "note"], [["xxx", "y", "long text"], ["z", "wwww", "n"]])
    assert text.splitlines() == [
        "a    bb    note",
        "---  ----  ----",
        "xxx  y     long text",
        "z    wwww  n",
    ]


def test_seed_sql_is_the_guides_block_with_begin_and_commit() -> None:
    """The psql baseline runs the guide's block verbatim, its own transaction included."""
    text = seed_sql()
    assert text.startswith("-- Run this SQL in your PostgreSQL database\n")
    assert "\nBEGIN;\n" in text
    assert text.rstrip().endswith("COMMIT;")
    assert text.count("DROP TABLE IF EXISTS") == 6


def test_scaled_rows_are_realistic_at_one_and_hold_together_at_any_scale() -> None:
    """Scale 1 is 1.8M rows, 1.79M of them in 0023's tables; stages stay four per pipeline."""
    at_one = rows_at(1)
    assert sum(at_one.values()) == 1_800_000
    assert dropped_rows(1) == 1_790_000
    for scale in (0.001, 0.25, 4):
        rows = rows_at(scale)
        assert rows["pipeline_stages"] == STAGES_PER_PIPELINE * rows["generation_pipelines"]
        assert 1 <= rows["variant_statistics"] <= rows["assets"]  # one per base asset
        assert min(rows.values()) >= 1
    assert dropped_rows(4) == pytest.approx(4 * dropped_rows(1), rel=0.001)
    with pytest.raises(ValueError, match="positive"):
        rows_at(0)


def test_application_streams_count_failed_statements_and_their_wait() -> None:
    """A failed statement is counted and its latency kept: the application waited for it."""
    stream = Stream.of([(0.002, True), (1.5, False), (0.004, True)])
    assert (stream.statements, stream.failed) == (3, 1)
    assert stream.max_s == stream.p99_s == 1.5
    assert stream.p50_s == 0.004
    spread = Spread.of([3.0, 1.0, 2.0])
    assert (spread.median_s, spread.min_s, spread.max_s) == (2.0, 1.0, 3.0)


def test_scale_option_takes_positive_numbers_only() -> None:
    """`--scale 0.25` is a quarter; zero, negatives and words are refused by the parser."""
    assert parse_args(["--only", "scale", "--scale", "0.25", "--scale", "4"]).scale == [0.25, 4.0]
    assert parse_args([]).scale is None
    for bad in ("0", "-1", "big"):
        with pytest.raises(SystemExit):
            parse_args(["--scale", bad])
