"""One view of a run, rendered for the terminal and for Slack: the same facts either way."""

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.core.facts import Facts, Found, Target
from bot.core.plan import build_plan
from bot.core.results import BackupInfo, Blocker, NeighbourCount, Outcome, TableCount
from bot.core.run import Run
from bot.core.runbook import parse_runbook
from bot.core.states import RunState
from bot.core.text import outcome_text, plan_text
from bot.slack.blocks import (
    details_snippet,
    incident_text,
    outcome_message,
    plan_message,
    sql_snippet,
)
from bot.slack.mrkdwn import SECTION_LIMIT

NOW = datetime(2026, 1, 1, 3, 0, tzinfo=UTC)
RUNBOOK = """---
journal: false
---
# Drop the wolves index

**Migration File**: `0030_wolves.sql`

## Quick Rollback

```sql
DROP INDEX IF EXISTS idx_sessions_expires;
```
"""
HOLDER = "rollbot run 1 (pid 4242)"
BLOCKER = Blocker(
    pid=4243, application="psql", state="idle in transaction", age_s=63, query="UPDATE assets"
)
FAILED = Outcome(
    succeeded=False,
    error="canceling statement due to lock timeout; nothing was changed",
    failed_statement="DROP INDEX IF EXISTS idx_sessions_expires;",
    failed_line=11,
    sqlstate="55P03",
    holder=HOLDER,
    blockers=(BLOCKER,),
    attempts=3,
)
FINAL = BackupInfo(
    kind="final",
    path=Path("backups/run-7-final.dump"),
    size_bytes=1_234_567,
    sha256="ab" * 32,
    duration_s=0.4,
    pg_dump_version="15.4",
    tables=("public.wolves",),
    verified=True,
    created_at=NOW,
)
SUCCEEDED = Outcome(
    succeeded=True,
    changed=True,
    dropped=(TableCount(table="public.wolves", rows=1200, backup_rows=1200),),
    deleted=(NeighbourCount(table="public.sessions", before=90, after=30),),
    neighbours=(NeighbourCount(table="public.users", before=5, after=5),),
    objects_expected=4,
    objects_gone=4,
    final_backup=FINAL,
    duration_s=1.25,
    attempts=2,
    restore_hint="pg_restore -d asset_forge backups/run-7-final.dump",
    notes=("Delete migrations/0030_wolves.sql too.",),
)


def a_run(state: RunState, outcome: Outcome | None = None, **changes: object) -> Run:
    runbook = parse_runbook(RUNBOOK, file="runbooks/0030_wolves.md")
    (statement,) = runbook.statements
    found = Found(
        statement=statement.number,
        position=0,
        kind=statement.objects[0].kind,
        name="public.idx_sessions_expires",
        exists=True,
        oid=1,
    )
    facts = Facts(target=Target(host="db", dbname="asset_forge"), objects=(found,))
    plan = build_plan(
        runbook, facts, lock_timeout=timedelta(seconds=2), statement_timeout=timedelta(seconds=30)
    )
    run = Run(
        id=7,
        migration_id="0030",
        runbook_name=plan.runbook_name,
        target_name="default",
        target_label="asset_forge on db",
        target_identity="default|db|5432|asset_forge",
        state=state,
        requested_by="U0REQ",
        approvers=("U0APP",),
        plan=plan.model_dump(mode="json"),
        plan_hash=plan.hash,
        outcome=outcome.model_dump(mode="json") if outcome is not None else None,
        created_at=NOW,
        updated_at=NOW,
    )
    return run.model_copy(update=changes)


def slack_text(run: Run) -> str:
    """Every section of the outcome message, as one string with Slack's escapes undone."""
    _, blocks = outcome_message(run)
    text = "\n".join(block["text"]["text"] for block in blocks)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def test_a_failed_run_shows_the_same_facts_in_the_terminal_and_in_slack() -> None:
    """SQLSTATE, failing line and statement, lock holder and blocking sessions: both ways."""
    run = a_run(RunState.FAILED, FAILED, reason="the lock was held")
    terminal, slack = outcome_text(run), slack_text(run)
    facts = [
        "Run 7 failed",
        FAILED.error or "",
        "55P03",
        "runbook line 11",
        "DROP INDEX IF EXISTS idx_sessions_expires;",
        HOLDER,
        BLOCKER.label(),
        "Nothing was changed",
    ]
    for fact in facts:
        assert fact in terminal, fact
        assert fact in slack, fact


def test_a_succeeded_run_shows_the_same_counts_in_the_terminal_and_in_slack() -> None:
    """Rows per table, deleted rows, objects, attempts, the final backup and how to undo it."""
    run = a_run(RunState.SUCCEEDED, SUCCEEDED)
    terminal, slack = outcome_text(run), slack_text(run)
    facts = [
        "Run 7 succeeded in 1.2 s (2 attempts)",
        "public.wolves",
        "1,200",
        "public.sessions",
        "(90 → 30)",
        "4 of 4 expected",
        "public.users",
        "Delete migrations/0030_wolves.sql too.",
        "backups/run-7-final.dump",
        "1.2 MB, sha256 abababababababab…, 0.4 s",
        "/rollback restore 7",
        SUCCEEDED.restore_hint or "",
    ]
    for fact in facts:
        assert fact in terminal.replace("*", ""), fact
        assert fact in slack.replace("*", ""), fact


def test_the_plan_shows_the_same_sections_in_the_terminal_and_in_slack() -> None:
    """Migration, runbook file, target, preflight, locks, approval, reason and the SQL."""
    run = a_run(RunState.BLOCKED, reason="an unexpected dependent object appeared")
    terminal = plan_text(run)
    _, blocks = plan_message(run, reaction="white_check_mark", approvers=("U0APP",))
    slack = "\n".join(
        b["text"]["text"] if b["type"] == "section" else b["elements"][0]["text"] for b in blocks
    )
    for fact in [
        "0030_wolves.sql",
        "runbooks/0030_wolves.md",
        "PostgreSQL",
        "1 statements: 1 will run",
        "no table locks",
        "an unexpected dependent object appeared",
        "DROP INDEX IF EXISTS idx_sessions_expires;",
        "approved by",
        run.plan_hash[:16],
    ]:
        assert fact in terminal, fact
        assert fact in slack, fact


def test_slack_keeps_database_text_inert_and_within_its_limits() -> None:
    """A holder naming `<!channel>` pings nobody; a huge statement is cut to fit the section."""
    outcome = FAILED.model_copy(
        update={
            "holder": "<!channel> & co",
            "failed_statement": "SELECT `x` " + "x" * 10_000,
            "blockers": (BLOCKER,) * 50,
        }
    )
    _, blocks = outcome_message(a_run(RunState.FAILED, outcome))
    text = blocks[0]["text"]["text"]
    assert len(text) <= SECTION_LIMIT
    assert "&lt;!channel&gt; &amp; co" in text
    assert "<!channel>" not in text
    assert re.search(r"`SELECT 'x' x{400,500}`", text)
    assert text.count("• pid 4243") == 10
    assert "*SQLSTATE*: `55P03`" in text


HOSTILE = "<!channel> <!here|here> <@U0EVIL> <https://evil.example|click> & ```"


def _all_text(blocks: list[dict[str, object]]) -> str:
    return json.dumps(blocks)


def test_text_from_runbooks_and_the_database_never_becomes_slack_markup() -> None:
    """Description, SQL, errors, reasons, holders: none pings, links or ends a code block."""
    run = a_run(RunState.BLOCKED, reason=f"the statement failed: {HOSTILE}")
    plan = run.rollback_plan().model_copy(
        update={"description": HOSTILE, "sql": f"DROP TABLE x; -- {HOSTILE}"}
    )
    run = run.model_copy(update={"plan": plan})
    failed = a_run(
        RunState.FAILED,
        FAILED.model_copy(update={"error": HOSTILE, "holder": HOSTILE, "notes": (HOSTILE,)}),
        reason=HOSTILE,
    )
    texts_seen = [
        _all_text(plan_message(run, reaction="white_check_mark", approvers=("U0APP",))[1]),
        _all_text(outcome_message(failed)[1]),
        incident_text(run, "blocked"),
        incident_text(failed, "failed"),
    ]
    for text in texts_seen:
        assert "<!channel>" not in text
        assert "<!here" not in text
        assert "<@U0EVIL>" not in text
        assert "<https://evil" not in text
        assert "&lt;!channel&gt;" in text
    plan_text_ = texts_seen[0]
    assert "```DROP TABLE" not in plan_text_, "SQL holding ``` goes to a file, not a code block"
    assert sql_snippet(run) is not None


def _plan_run(sql: str, *, exists: bool) -> Run:
    text = RUNBOOK.replace("DROP INDEX IF EXISTS idx_sessions_expires;", sql)
    runbook = parse_runbook(text, file="runbooks/0030_wolves.md")
    found = tuple(
        Found(
            statement=s.number,
            position=i,
            kind=o.kind,
            name=f"public.{o.name}",
            exists=exists,
            oid=100 + s.number * 10 + i if exists else None,
        )
        for s in runbook.statements
        for i, o in enumerate(s.objects)
    )
    facts = Facts(target=Target(host="db", dbname="asset_forge"), objects=found)
    plan = build_plan(
        runbook, facts, lock_timeout=timedelta(seconds=2), statement_timeout=timedelta(seconds=30)
    )
    base = a_run(RunState.AWAITING_APPROVAL).model_dump(mode="json")
    return Run.model_validate(base | {"plan": plan.model_dump(mode="json"), "plan_hash": plan.hash})


def test_the_plan_shows_its_own_statements_before_the_wrapper() -> None:
    """Counts by kind and every statement that removes data, near the top, as written."""
    sql = (
        "DROP INDEX IF EXISTS idx_a;\nDROP INDEX IF EXISTS idx_b;\n"
        "DROP TABLE IF EXISTS wolves;\nDELETE FROM sessions WHERE user_agent = 'curl';"
    )
    _, blocks = plan_message(_plan_run(sql, exists=True), reaction="white_check_mark", approvers=())
    texts = [b["text"]["text"] for b in blocks if b.get("type") == "section"]
    runs = next(t for t in texts if t.startswith("*Runs*"))
    assert runs.startswith("*Runs* 4 statements run: 2 DROP INDEX, 1 DROP TABLE, 1 DELETE")
    assert "`DROP TABLE IF EXISTS wolves`" in runs
    assert "`DELETE FROM sessions WHERE user_agent = 'curl'`" in runs
    assert "DROP INDEX" not in runs.split("\n", 1)[1]  # only what removes data is listed
    sql_at = next(i for i, t in enumerate(texts) if "BEGIN" in t)
    assert texts.index(runs) < sql_at


def test_a_plan_with_nothing_to_do_says_so_first() -> None:
    """An already rolled-back migration: one line first, not fifty no-ops then the reason."""
    sql = "\n".join(f"DROP INDEX IF EXISTS idx_{n};" for n in range(54))
    run = _plan_run(sql, exists=False)
    _, blocks = plan_message(run, reaction="white_check_mark", approvers=())
    second = blocks[1]["text"]["text"]
    assert second.startswith(":information_source: *Nothing to do: all 54 statements are no-ops")
    preflight = next(b["text"]["text"] for b in blocks if "*Preflight*" in str(b))
    assert len(preflight) <= SECTION_LIMIT
    assert re.search(r"… and \d+ more in the plan attached in the thread$", preflight)
    assert plan_text(run).splitlines()[5].startswith("Nothing to do: all 54 statements")
    attached = details_snippet(run)
    assert attached is not None
    name, content = attached
    assert name == "rollback-run-7-plan.txt"
    assert "no-op (line 64): index idx_53 does not exist" in content  # the last one, too


def test_what_blocks_comes_before_the_no_ops() -> None:
    """The reason a plan cannot run is the first thing under Preflight, whatever else it lists."""
    sql = "\n".join(f"DROP INDEX IF EXISTS idx_{n};" for n in range(30)) + "\nDROP INDEX idx_gone;"
    run = _plan_run(sql, exists=False)
    assert run.rollback_plan().blockers
    lines = next(
        b["text"]["text"]
        for b in plan_message(run, reaction="x", approvers=())[1]
        if "*Preflight*" in str(b)
    ).split("\n")
    assert lines[2] == "• BLOCKED: line 41: index idx_gone does not exist and there is no IF EXISTS"
