"""The README's example outputs are compared line by line, `…` standing for lines left out."""

from __future__ import annotations

from tests.readme.examples import matches, normalise

OUTPUT = """\
Run 1: roll back 0023_loud_shen — awaiting approval
Plan hash   543cb23b88ed859d
SQL (exactly what will run):
  BEGIN ISOLATION LEVEL READ COMMITTED;
  LOCK TABLE public.api_errors IN ACCESS EXCLUSIVE MODE;
  CREATE SCHEMA rollbot_quarantine_0023_140047;
  COMMIT;
"""


def _same(shown: str, example: str) -> bool:
    return matches(normalise(shown), normalise(example))


def test_an_example_without_elision_must_be_the_whole_output() -> None:
    """Every line, in order: one line left out or added is a mismatch."""
    assert _same(OUTPUT, OUTPUT)
    assert not _same(OUTPUT, OUTPUT.replace("  COMMIT;\n", ""))
    assert not _same(OUTPUT.replace("  COMMIT;\n", ""), OUTPUT)
    assert not _same(OUTPUT, OUTPUT + "extra\n")


def test_an_elision_line_stands_for_any_lines_but_the_others_must_be_there_in_order() -> None:
    """`…` matches none, one or many lines; what is around it is still compared exactly."""
    head = "Run 1: roll back 0023_loud_shen — awaiting approval\n…\n"
    assert _same(OUTPUT, head)
    assert _same(OUTPUT, head + "  COMMIT;\n")
    assert _same(OUTPUT, "…\n" + OUTPUT)
    assert _same(OUTPUT, OUTPUT.replace("SQL (exactly what will run):\n", "…\n"))
    assert not _same(OUTPUT, head + "  ROLLBACK;\n")
    assert not _same(OUTPUT, "…\n  COMMIT;\n…\n  BEGIN ISOLATION LEVEL READ COMMITTED;\n")
    assert not _same(OUTPUT, "Run 2: roll back 0023_loud_shen — awaiting approval\n…\n")


def test_an_ellipsis_inside_a_line_is_text_not_an_elision() -> None:
    """Outputs print `…` themselves (`ALTER TABLE … DROP CONSTRAINT`): only a line of it elides."""
    shown = "Runs 9 ALTER TABLE … DROP CONSTRAINT\n"
    assert _same(shown, shown)
    assert not _same(shown, "Runs 9 ALTER TABLE …\n")


def test_varying_figures_are_compared_by_shape() -> None:
    """Times, sizes, durations, hashes, object ids and user@host:pid may differ; the rest not."""
    real = (
        "2026-12-02 19:16:31Z  requested  U01ALICE  - → requested  root@vm:31362\n"
        "verified: /srv/rollbot/backups/default-run-1-20261202-191631.dump, 167.0 kB, "
        "sha256 ed4c7d9906821992…, 0.2 s\n"
        "moved into rollbot_quarantine_0023_140047; plan 543cb23b88ed859d\n"
    )
    shown = (
        "2026-01-05 08:13:41Z  requested  U01ALICE  - → requested  alice@bastion:4242\n"
        "verified: /srv/rollbot/backups/default-run-1-20260105-081341.dump, 262.4 kB, "
        "sha256 0123456789abcdef…, 1.25 s\n"
        "moved into rollbot_quarantine_0023_16384; plan fedcba9876543210\n"
    )
    assert _same(real, shown)
    assert not _same(real, shown.replace("default-run-1", "default-run-2"))
    assert not _same(real, shown.replace("U01ALICE", "U02BOB"))
    assert not _same(real, shown.replace("_0023_", "_0022_"))


def test_the_tests_own_values_read_as_the_readmes_words() -> None:
    """The scratch database, server and directory become the README's, before comparing."""
    real = "Target rollbot_t_5f3a on 127.0.0.1:5432; /home/ci/work/ex0/backups/x.dump"
    stand_ins = {
        "rollbot_t_5f3a": "asset_forge",
        "127.0.0.1:5432": "db.internal:5432",
        "/home/ci/work/ex0": "/srv/rollbot",
    }
    assert normalise(real, stand_ins) == (
        "Target asset_forge on db.internal:5432; /srv/rollbot/backups/x.dump"
    )
