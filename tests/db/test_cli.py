"""The `rollbot` command as a script uses it: JSON out, exit codes, no secret ever printed."""

import contextlib
import getpass
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from demo.sample import MIGRATIONS_DIR
from tests.db.test_quarantine import schema_exists
from tests.fix_drizzle import CHAIN_DIR
from tests.fix_rollbot import APPROVER, REQUESTER, RUNBOOKS, runbooks_with, schema_of
from tests.secrets import (
    VAULT_LOG_RUNBOOK,
    VAULT_RUNBOOK,
    Secrets,
    leaks,
    secret_roles,
    share_the_vault,
    state_tables_text,
)
from tests.warm_cli import WARM

pytestmark = pytest.mark.slow  # every test starts `rollbot` processes, seconds each

SECRET = "s3cret-pa55word"


def rollbot(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`rollbot ARGS` in a process of its own, forked from one that has its modules loaded."""
    return WARM.run(list(args), env={**os.environ, **env})


def cold_rollbot(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python -m bot ARGS` started from nothing, imports and all."""
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
        check=False,
    )


def with_password(conninfo: str) -> str:
    """Trust auth ignores the password; it is there to prove it never leaks."""
    params = conninfo_to_dict(conninfo)
    params["password"] = SECRET
    return make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})


def env_for(conninfo: str, tmp_path: Path) -> dict[str, str]:
    return {
        "DATABASE_URL": with_password(conninfo),
        "ROLLBOT_RUNBOOKS_DIR": str(RUNBOOKS),
        "ROLLBOT_BACKUP_DIR": str(tmp_path / "backups"),
        "ROLLBOT_APPROVERS": APPROVER,
        "ROLLBOT_LOG_LEVEL": "info",
        "ROLLBOT_MIGRATIONS_DIR": str(MIGRATIONS_DIR),
    }


def test_plan_approve_show_with_json(db_0023: str, tmp_path: Path) -> None:
    """Plan → approve → runs → show through the CLI; JSON parses; the password never appears."""
    env = env_for(db_0023, tmp_path)
    planned = rollbot("plan", "0023", "--requested-by", REQUESTER, "--json", env=env)
    assert planned.returncode == 0, planned.stderr
    run = json.loads(planned.stdout)
    assert run["state"] == "awaiting_approval"
    assert run["backup"]["full"]["verified"] is True

    refused = rollbot("approve", str(run["id"]), "--as", REQUESTER, env=env)
    assert refused.returncode == 2
    assert "cannot approve it" in refused.stderr

    approved = rollbot("approve", str(run["id"]), "--as", APPROVER, env=env)
    assert approved.returncode == 0, approved.stderr
    # Quarantine mode (the default): the pre-approval backup left the moved rows in place,
    # the outcome is printed at COMMIT and the quarantine's dump follows, said on stderr.
    # Printed at COMMIT, before the quarantine's dump: no count claims to be in a file yet.
    assert "public.api_errors: 900 / pending / - (moved aside)" in approved.stdout
    assert (
        "Objects moved aside to the quarantine schema rollbot_quarantine_0023_" in approved.stdout
    )
    assert ", kept until purge: 53 of 53 expected" in approved.stdout
    assert "committed; taking the final backup of rollbot_quarantine_0023_" in approved.stderr
    assert "the final backup of rollbot_quarantine_0023_" in approved.stderr
    assert "is taken" in approved.stderr

    listed = json.loads(rollbot("runs", "--json", env=env).stdout)
    assert [(r["id"], r["state"]) for r in listed] == [(run["id"], "succeeded")]
    shown = rollbot("show", str(run["id"]), env=env)
    assert "succeeded" in shown.stdout
    assert "public.api_errors: 900 / 900 / - (moved aside)" in shown.stdout  # dumped since
    for output in (planned, refused, approved, shown):
        assert SECRET not in output.stdout + output.stderr


def test_runbooks_lists_the_seed() -> None:
    """`rollbot runbooks` needs no database and lists the seed with its description."""
    done = cold_rollbot("runbooks", env={"ROLLBOT_RUNBOOKS_DIR": str(RUNBOOKS)})
    assert done.returncode == 0
    assert "0023  0023_loud_shen" in done.stdout
    assert "Add generation pipelines" in done.stdout


def test_bad_configuration_names_the_variable() -> None:
    """A malformed approver list stops the command with the variable named, exit 2."""
    done = rollbot(
        "runs", env={"ROLLBOT_APPROVERS": "alice", "DATABASE_URL": "postgresql://x@127.0.0.1:1/x"}
    )
    assert done.returncode == 2
    assert "ROLLBOT_APPROVERS: 'alice' is not a Slack user ID" in done.stderr


def test_unreachable_state_database_is_a_clear_error() -> None:
    """A database that does not answer gives one sentence naming DATABASE_URL, no traceback."""
    env = {
        "DATABASE_URL": f"postgresql://u:{SECRET}@127.0.0.1:1/db",
        "ROLLBOT_CONNECT_TIMEOUT": "1s",
    }
    done = rollbot("runs", env=env)
    assert done.returncode == 2
    assert "The state database (DATABASE_URL) cannot be reached" in done.stderr
    assert "port 1 (connection refused)" in done.stderr
    assert "Traceback" not in done.stderr
    assert SECRET not in done.stderr


def test_unknown_migration_suggests(tmp_path: Path, db_0023: str) -> None:
    """An unknown or hostile migration id is refused with a suggestion; nothing is planned."""
    env = env_for(db_0023, tmp_path)
    done = rollbot("plan", "0023; DROP TABLE users", "--requested-by", REQUESTER, env=env)
    assert done.returncode == 2
    assert "is not a migration id" in done.stderr
    assert json.loads(rollbot("runs", "--json", env=env).stdout) == []


def test_history_lint_derive_and_restore(db_0023: str, tmp_path: Path) -> None:
    """history, lint and derive on the command line; restore plans and approves like a rollback."""
    env = env_for(db_0023, tmp_path)
    assert "| 0023_loud_shen.sql | 2025-11-13 |" in rollbot("history", env=env).stdout
    lint = rollbot("lint", "0023", env=env)
    assert lint.returncode == 0
    assert "never created by 0023_loud_shen.sql: constraint error_aggregations_resolved_by" in (
        lint.stdout
    )
    derived = rollbot("derive", "0023", env=env)
    assert "derived" in derived.stdout.lower()
    assert "DROP TABLE IF EXISTS" in derived.stdout
    chain = {**env, "ROLLBOT_MIGRATIONS_DIR": str(CHAIN_DIR)}
    restoring = rollbot("derive", "0011", env=chain)  # N-1 replayed on the target's server
    assert restoring.returncode == 0, restoring.stderr
    assert "CREATE INDEX users_team_idx ON public.users USING btree (team_id);" in (
        restoring.stdout
    )
    run = json.loads(rollbot("plan", "0023", "--requested-by", REQUESTER, "--json", env=env).stdout)
    assert rollbot("approve", str(run["id"]), "--as", APPROVER, env=env).returncode == 0
    planned = rollbot("restore", str(run["id"]), "--requested-by", REQUESTER, "--json", env=env)
    restore = json.loads(planned.stdout)
    assert restore["kind"] == "restore"
    assert rollbot("approve", str(restore["id"]), "--as", APPROVER, env=env).returncode == 0
    line = next(x for x in rollbot("history", env=env).stdout.splitlines() if "0023_loud" in x)
    assert line.endswith("| current |")


def test_ctrl_c_during_approve_rolls_back_and_says_one_line(db_0023: str, tmp_path: Path) -> None:
    """Ctrl-C while the execution waits for a lock: one line, exit 130, nothing dropped."""
    env = {**env_for(db_0023, tmp_path), "ROLLBOT_LOCK_TIMEOUT": "20s"}
    planned = rollbot("plan", "0023", "--requested-by", REQUESTER, "--json", env=env)
    run_id = json.loads(planned.stdout)["id"]
    with psycopg.connect(db_0023) as blocker:
        blocker.execute("SELECT count(*) FROM assets")  # the execution waits for this
        approving = subprocess.Popen(
            [sys.executable, "-m", "bot", "approve", str(run_id), "--as", APPROVER],
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while _state(db_0023, run_id) != "executing":
            assert time.monotonic() < deadline, "the approval never started executing"
            time.sleep(0.1)
        time.sleep(0.5)  # inside the LOCK wait
        approving.send_signal(signal.SIGINT)
        _, stderr = approving.communicate(timeout=30)
    assert approving.returncode == 130
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1].startswith("rollbot: interrupted")
    with psycopg.connect(db_0023) as conn:
        row = conn.execute("SELECT count(*) FROM api_errors").fetchone()
    assert row == (900,)
    # Settled on the way out, with no server running: the migration is free again at once.
    assert _state(db_0023, run_id) == "failed"
    again = rollbot("plan", "0023", "--requested-by", REQUESTER, "--json", env=env)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["state"] == "awaiting_approval"


def test_a_killed_cli_run_is_settled_by_the_next_cli_command(db_0023: str, tmp_path: Path) -> None:
    """`approve` killed mid-execution: the very next command, not a server, tells the truth."""
    env = {**env_for(db_0023, tmp_path), "ROLLBOT_LOCK_TIMEOUT": "20s"}
    planned = rollbot("plan", "0023", "--requested-by", REQUESTER, "--json", env=env)
    run_id = json.loads(planned.stdout)["id"]
    with psycopg.connect(db_0023) as blocker:
        blocker.execute("SELECT count(*) FROM assets")
        approving = subprocess.Popen(
            [sys.executable, "-m", "bot", "approve", str(run_id), "--as", APPROVER],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while _state(db_0023, run_id) != "executing":
            assert time.monotonic() < deadline, "the approval never started executing"
            time.sleep(0.1)
        approving.kill()
        approving.wait(timeout=30)
    shown = rollbot("show", str(run_id), "--json", env=env)
    run = json.loads(shown.stdout)
    assert run["state"] == "failed"
    assert "nothing changed" in run["reason"]
    again = rollbot("plan", "0023", "--requested-by", REQUESTER, "--json", env=env)
    assert json.loads(again.stdout)["state"] == "awaiting_approval", again.stderr


@pytest.mark.parametrize("lock_freed", [True, False], ids=["then-committed", "then-ended"])
def test_a_killed_purge_is_settled_by_what_postgresql_did(
    db_0023: str, tmp_path: Path, lock_freed: bool
) -> None:
    """`approve` of a purge killed while psql waits: the next command tells the truth.

    psql holds the whole script and its COMMIT when rollbot dies. If the lock is freed first,
    the orphaned psql commits with nobody left to record it, and the transaction id stored
    before the script was sent lets the next command say "succeeded", not "nothing changed".
    If not, the next command ends the orphan's session, and its transaction is rolled back.
    """
    env = {**env_for(db_0023, tmp_path), "ROLLBOT_LOCK_TIMEOUT": "20s"}
    schema, run_id = _quarantined_then(env, "purge")
    # psql queued on the lock, and rollbot done writing to it (waiting for it to exit).
    with _approve_killed_at_the_lock(db_0023, env, run_id, schema, until_written=True):
        if not lock_freed:
            settled = json.loads(rollbot("show", str(run_id), "--json", env=env).stdout)
    if lock_freed:
        deadline = time.monotonic() + 30
        while schema_exists(db_0023, schema):  # psql, orphaned, runs the rest and commits
            assert time.monotonic() < deadline, "the orphaned purge never committed"
            time.sleep(0.05)
        settled = json.loads(rollbot("show", str(run_id), "--json", env=env).stdout)
        assert settled["state"] == "succeeded", settled["reason"]
    else:
        assert settled["state"] == "failed"
        assert "reports its transaction aborted: nothing changed" in settled["reason"]
    assert settled["xid"] is not None
    with psycopg.connect(db_0023) as conn:
        public = conn.execute("SELECT to_regclass('public.api_errors') IS NOT NULL").fetchone()
    assert public == (False,)  # a purge never puts anything back
    assert schema_exists(db_0023, schema) is not lock_freed


@pytest.mark.parametrize("lock_freed", [True, False], ids=["then-freed", "then-ended"])
def test_a_killed_move_back_is_settled_as_nothing_changed(
    db_0023: str, tmp_path: Path, lock_freed: bool
) -> None:
    """`approve` of a move back killed while it waits for a lock: nothing is moved back.

    A move back runs in rollbot's own session, and its COMMIT is sent only once the script
    has returned, so a rollbot that dies before leaves a transaction nobody can commit. Lock
    freed or not, the next command ends that session, and the transaction id stored before
    the script was sent lets it say "nothing changed" because PostgreSQL says so.
    """
    env = {**env_for(db_0023, tmp_path), "ROLLBOT_LOCK_TIMEOUT": "20s"}
    schema, run_id = _quarantined_then(env, "restore")
    with _approve_killed_at_the_lock(db_0023, env, run_id, schema, until_written=False):
        if not lock_freed:
            settled = json.loads(rollbot("show", str(run_id), "--json", env=env).stdout)
    if lock_freed:
        settled = json.loads(rollbot("show", str(run_id), "--json", env=env).stdout)
    assert settled["state"] == "failed", settled["reason"]
    assert "nothing changed" in settled["reason"]
    assert settled["xid"] is not None
    with psycopg.connect(db_0023) as conn:
        public = conn.execute("SELECT to_regclass('public.api_errors') IS NOT NULL").fetchone()
    assert public == (False,)
    assert schema_exists(db_0023, schema)


def _quarantined_then(env: dict[str, str], command: str) -> tuple[str, int]:
    """Roll 0023 back into a quarantine, then plan `command` (purge, restore) of that run."""
    rolled = json.loads(
        rollbot("plan", "0023", "--requested-by", REQUESTER, "--json", env=env).stdout
    )
    assert rollbot("approve", str(rolled["id"]), "--as", APPROVER, env=env).returncode == 0
    shown = json.loads(rollbot("show", str(rolled["id"]), "--json", env=env).stdout)
    planned = rollbot(command, str(rolled["id"]), "--requested-by", REQUESTER, "--json", env=env)
    return shown["outcome"]["quarantine"]["schema_name"], json.loads(planned.stdout)["id"]


@contextlib.contextmanager
def _approve_killed_at_the_lock(
    conninfo: str, env: dict[str, str], run_id: int, schema: str, *, until_written: bool
) -> Iterator[None]:
    """`approve RUN` in a process killed once it waits on a lock held here; yields still held.

    `until_written`: also wait until rollbot is done writing to its psql and waits for it to
    exit, so that psql holds the whole script when rollbot dies.
    """
    with psycopg.connect(conninfo) as blocker:
        blocker.execute(
            sql.SQL("LOCK TABLE {}.api_errors IN ACCESS SHARE MODE").format(sql.Identifier(schema))
        )
        approving = subprocess.Popen(
            [sys.executable, "-m", "bot", "approve", str(run_id), "--as", APPROVER],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while not (
            _waiting(conninfo, f"rollbot run {run_id} restore")
            and (not until_written or Path(f"/proc/{approving.pid}/wchan").read_text() == "do_wait")
        ):
            assert approving.poll() is None, "the command ended before it met the lock"
            assert time.monotonic() < deadline, "the command never waited for the lock"
            time.sleep(0.05)
        approving.kill()
        approving.wait(timeout=30)
        yield


def _waiting(conninfo: str, application_name: str) -> bool:
    """That session, in this database (run ids repeat across the tests' databases), queued."""
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
            " AND datname = current_database() AND wait_event_type = 'Lock'",
            (application_name,),
        ).fetchone()
    return bool(row and row[0])


def test_an_expired_plan_does_not_block_a_new_one(db_0023: str, tmp_path: Path) -> None:
    """Nobody cancels a forgotten plan: once its window closes, a new plan simply goes ahead."""
    env = {**env_for(db_0023, tmp_path), "ROLLBOT_APPROVAL_TTL": "1s"}
    first = json.loads(
        rollbot("plan", "0023", "--requested-by", REQUESTER, "--json", env=env).stdout
    )
    time.sleep(1.5)
    second = rollbot("plan", "0023", "--requested-by", REQUESTER, "--json", env=env)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["state"] == "awaiting_approval"
    assert _state(db_0023, first["id"]) == "expired"


def _state(conninfo: str, run_id: int) -> str:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute("SELECT state FROM rollbot.runs WHERE id = %s", (run_id,)).fetchone()
    return str(row[0]) if row else ""


def test_no_secret_or_literal_reaches_the_terminal_or_the_store(
    db_0023: str, tmp_path: Path
) -> None:
    """The CLI through the failures that echo secrets: none in any output, `--json` or state row.

    A DBA's password change holds the lock; a trigger's error quotes a password, at execution
    and at rehearsal; targets that do not answer, cannot be parsed, or cannot be dumped.
    """
    secrets = Secrets()
    runbooks = runbooks_with(tmp_path, "0031_vault.md", VAULT_RUNBOOK)
    (runbooks / "0032_vault_log.md").write_text(VAULT_LOG_RUNBOOK)
    env = {
        **env_for(db_0023, tmp_path),
        **secrets.urls(db_0023),
        "ROLLBOT_RUNBOOKS_DIR": str(runbooks),
        "ROLLBOT_LOCK_TIMEOUT": "300ms",
        "ROLLBOT_LOCK_RETRIES": "1",
        "ROLLBOT_REHEARSAL": "affected",
        "ROLLBOT_CONNECT_TIMEOUT": "2s",
        "ROLLBOT_LOG_LEVEL": "debug",
    }
    outputs: list[subprocess.CompletedProcess[str]] = []

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        done = rollbot(*args, env=env)
        outputs.append(done)
        return done

    with secret_roles(db_0023, secrets):
        blocked = json.loads(cli("plan", "0023", "--requested-by", REQUESTER, "--json").stdout)
        with psycopg.connect(db_0023, application_name="admin-shell") as blocker:
            blocker.execute("SELECT count(*) FROM assets")  # the rollback waits for this
            blocker.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(secrets.victim_role), sql.Literal(secrets.literal)
                )
            )
            assert cli("approve", str(blocked["id"]), "--as", APPROVER, "--json").returncode == 1
        echoed = json.loads(cli("plan", "0031", "--requested-by", REQUESTER, "--json").stdout)
        share_the_vault(db_0023, secrets)
        echo = cli("approve", str(echoed["id"]), "--as", APPROVER, "--json")
        assert echo.returncode == 1
        assert "violates not-null constraint" in json.loads(echo.stdout)["reason"]
        assert cli("plan", "0032", "--requested-by", REQUESTER).returncode == 1
        for target in ("gone", "bad", "reader"):
            cli("plan", "0023", "--requested-by", REQUESTER, "--target", target, "--json")
            cli("history", "--target", target)
        for run in (blocked, echoed):
            cli("show", str(run["id"]))
            cli("show", str(run["id"]), "--json")
        cli("runs", "--json")
        shown = json.loads(cli("show", str(blocked["id"]), "--json").stdout)
        assert shown["outcome"]["blockers"], "the blocking session was not named"
        channels = {
            "stdout": "\n".join(o.stdout for o in outputs),
            "stderr": "\n".join(o.stderr for o in outputs),
            "state": state_tables_text(db_0023),
        }
    assert "Traceback" not in channels["stderr"]
    assert leaks(channels, secrets.values()) == []


def test_exit_statuses_and_words_say_what_happened(db_0023: str, tmp_path: Path) -> None:
    """A cancel that cancels exits 0; broken or CASCADE runbooks exit 1; sentences end once."""
    env = env_for(db_0023, tmp_path)
    planned = json.loads(
        rollbot("plan", "0023", "--requested-by", REQUESTER, "--json", env=env).stdout
    )
    cancelled = rollbot("cancel", str(planned["id"]), "--as", REQUESTER, env=env)
    assert cancelled.returncode == 0, cancelled.stderr
    assert "cancelled" in cancelled.stdout
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "0099_broken.md").write_text("# Broken\n\nno migration file, no SQL\n")
    listed = rollbot("runbooks", env={**env, "ROLLBOT_RUNBOOKS_DIR": str(broken)})
    assert listed.returncode == 1
    assert "0099_broken.md" in listed.stdout
    cascading = tmp_path / "cascading"
    cascading.mkdir()
    seed = (RUNBOOKS / "0023_loud_shen.md").read_text()
    (cascading / "0023_loud_shen.md").write_text(
        seed.replace(
            "DROP TABLE IF EXISTS variant_statistics;",
            "DROP TABLE IF EXISTS variant_statistics CASCADE;",
        )
    )
    listed = rollbot("runbooks", env={**env, "ROLLBOT_RUNBOOKS_DIR": str(cascading)})
    assert listed.returncode == 1, listed.stdout
    assert "BLOCKED" in listed.stdout
    assert "CASCADE" in listed.stdout
    empty = rollbot("plan", "", "--requested-by", REQUESTER, env=env)
    assert "?." not in empty.stderr


def test_backups_are_named_by_target_and_found_from_any_directory(
    db_0023: str, tmp_path: Path
) -> None:
    """A relative ROLLBOT_BACKUP_DIR is stored as an absolute path; files name their target."""
    work = tmp_path / "work"
    work.mkdir()
    env = {**env_for(db_0023, tmp_path), "ROLLBOT_BACKUP_DIR": "backups"}
    planned = subprocess.run(
        [sys.executable, "-m", "bot", "plan", "0023", "--requested-by", REQUESTER, "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        cwd=work,
        timeout=120,
        check=False,
    )
    run = json.loads(planned.stdout)
    path = Path(run["backup"]["full"]["path"])
    assert path.is_absolute()
    assert path.parent == work / "backups"
    assert path.name.startswith(f"default-run-{run['id']}-")
    assert path.is_file()


def test_the_audit_trail_names_who_did_what_from_where(db_0023: str, tmp_path: Path) -> None:
    """`rollbot log RUN`: every step with its actor and process, the refusal with its reason."""
    env = env_for(db_0023, tmp_path)
    run = json.loads(rollbot("plan", "0023", "--requested-by", REQUESTER, "--json", env=env).stdout)
    refused = rollbot("approve", str(run["id"]), "--as", REQUESTER, env=env)
    assert refused.returncode == 2
    assert rollbot("approve", str(run["id"]), "--as", APPROVER, env=env).returncode == 0
    shown = rollbot("log", str(run["id"]), env=env)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith(f"Run {run['id']}: rollback of 0023_loud_shen")
    assert f"plan {run['plan_hash'][:16]}" in lines[0]
    kinds = [line.split()[2] for line in lines[1:]]
    assert kinds[0] == "requested"
    assert "approval_refused" in kinds
    assert kinds[-1] == "succeeded"
    assert any(REQUESTER in line and "approval_refused" in line for line in lines)
    events = json.loads(rollbot("log", str(run["id"]), "--json", env=env).stdout)
    assert all(":" in e["data"]["process"] for e in events)  # host:pid of the process
    assert len({e["data"]["process"] for e in events}) >= 2  # plan and approve: two processes
    missing = rollbot("log", "999", env=env)
    assert missing.returncode == 2
    assert "There is no run 999" in missing.stderr


def test_runs_say_kind_target_and_who_and_filter(db_0023: str, tmp_path: Path) -> None:
    """`rollbot runs` tells restores from rollbacks and filters by state, target and date."""
    env = env_for(db_0023, tmp_path)
    run = json.loads(rollbot("plan", "0023", "--requested-by", REQUESTER, "--json", env=env).stdout)
    assert rollbot("approve", str(run["id"]), "--as", APPROVER, env=env).returncode == 0
    restore = json.loads(
        rollbot("restore", str(run["id"]), "--requested-by", REQUESTER, "--json", env=env).stdout
    )
    table = rollbot("runs", env=env).stdout.splitlines()
    assert table[0].split()[:3] == ["RUN", "KIND", "STATE"]
    assert table[1].split()[:3] == [str(restore["id"]), "restore", "awaiting_approval"]
    assert table[2].split()[:3] == [str(run["id"]), "rollback", "succeeded"]
    assert APPROVER in table[2]
    waiting = json.loads(rollbot("runs", "--state", "awaiting_approval", "--json", env=env).stdout)
    assert [r["id"] for r in waiting] == [restore["id"]]
    assert json.loads(rollbot("runs", "--target", "nowhere", "--json", env=env).stdout) == []
    future = json.loads(rollbot("runs", "--since", "2999-01-01", "--json", env=env).stdout)
    assert future == []
    bad = rollbot("runs", "--since", "yesterday", env=env)
    assert bad.returncode == 2
    assert "is not a date" in bad.stderr


def test_a_closed_pipe_ends_the_output_quietly(db_0023: str, tmp_path: Path) -> None:
    """`rollbot runbooks | head -c 1`: the reader left; no BrokenPipe traceback, exit 0."""
    read, write = os.pipe()
    os.close(read)  # the reader is gone before rollbot writes a byte
    try:
        piped = subprocess.run(
            [sys.executable, "-m", "bot", "runbooks", "--json"],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **env_for(db_0023, tmp_path)},
            timeout=60,
            check=False,
        )
    finally:
        os.close(write)
    assert piped.returncode == 0, piped.stderr
    assert piped.stderr == ""


def test_sql_previews_a_rollback_without_side_effects(db_0023: str, tmp_path: Path) -> None:
    """`rollbot sql 0023`: the exact SQL and preflight; no run, no backup, no table touched."""
    env = env_for(db_0023, tmp_path)
    before = schema_of(db_0023)
    shown = rollbot("sql", "0023", env=env)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("Roll back 0023_loud_shen: Preview only")
    # The default quarantine mode: the SQL shown is the SQL that runs, a move aside.
    assert "ALTER TABLE public.api_errors SET SCHEMA rollbot_quarantine_0023_" in shown.stdout
    assert "DROP TABLE IF EXISTS api_errors;" not in shown.stdout
    assert "public.api_errors: 900 rows" in shown.stdout
    as_json = json.loads(rollbot("sql", "0023", "--json", env=env).stdout)
    assert as_json["hash"][:16] in shown.stdout
    assert json.loads(rollbot("runs", "--json", env=env).stdout) == []
    assert not (tmp_path / "backups").exists() or not any((tmp_path / "backups").iterdir())
    assert schema_of(db_0023) == before
    with psycopg.connect(db_0023, autocommit=True) as conn:
        conn.execute("CREATE VIEW recent_errors AS SELECT * FROM api_errors")
    blocked = rollbot("sql", "0023", env=env)
    assert blocked.returncode == 1
    assert blocked.stdout.startswith("Roll back 0023_loud_shen: Blocked")
    assert "view recent_errors depends on" in blocked.stdout


def test_looking_creates_no_schema_and_identities_are_checked_and_recorded(
    db_0023: str, tmp_path: Path
) -> None:
    """Read-only commands leave a fresh database without a rollbot schema; IDs are checked.

    Then a real plan and cancel record the OS user beside host:pid in the audit trail.
    """
    env = env_for(db_0023, tmp_path)
    assert rollbot("runs", env=env).stdout.strip() == "No runs yet."
    assert json.loads(rollbot("runs", "--json", env=env).stdout) == []
    for args in (("history",), ("show", "1"), ("log", "1"), ("sql", "0023"), ("lint", "0023")):
        done = rollbot(*args, env=env)
        assert "Traceback" not in done.stderr, (args, done.stderr)
    assert "There is no run 1" in rollbot("show", "1", env=env).stderr
    assert schema_of(db_0023, exclude=()) == schema_of(db_0023)  # no rollbot schema at all
    for flag, value in (("--requested-by", ""), ("--requested-by", "  "), ("--as", "alice")):
        command = ("plan", "0023") if flag == "--requested-by" else ("cancel", "1")
        refused = rollbot(*command, flag, value, env=env)
        assert refused.returncode == 2
        assert f"argument {flag}" in refused.stderr
        assert "is not a Slack user ID" in refused.stderr
        assert "U… or W…" in refused.stderr
    assert schema_of(db_0023, exclude=()) == schema_of(db_0023)
    run = json.loads(rollbot("plan", "0023", "--requested-by", REQUESTER, "--json", env=env).stdout)
    assert rollbot("cancel", str(run["id"]), "--as", REQUESTER, env=env).returncode == 0
    events = json.loads(rollbot("log", str(run["id"]), "--json", env=env).stdout)
    user = getpass.getuser()
    assert {e["data"]["os_user"] for e in events} == {user}
    assert f"{user}@" in rollbot("log", str(run["id"]), env=env).stdout


# (A carriage return is not among them: a runbook file is read as text, and reads it as a
# line break, so no runbook can name such a table.)
HOSTILE = "evil\x1b[2J\x1b[1;1Happroved\x08ok\u202egnp.\x07"
HOSTILE_RUNBOOK = f"""---
journal: false  # not a Drizzle migration
---
# Drop a table with a hostile name

**Migration File**: `0040_hostile.sql`

## Quick Rollback

```sql
DROP TABLE public."{HOSTILE}";
```
"""


def test_control_characters_in_names_reach_the_terminal_as_escapes(
    db_0023: str, tmp_path: Path
) -> None:
    """A table named to clear the screen, rewrite a line and reverse text cannot do any of it.

    Whoever can create a table names it; the plan a person reads before approving must show
    what is there, not what the name draws.
    """
    with psycopg.connect(db_0023) as conn:
        conn.execute(sql.SQL("CREATE TABLE public.{} (id int)").format(sql.Identifier(HOSTILE)))
    runbooks = runbooks_with(tmp_path, "0040_hostile.md", HOSTILE_RUNBOOK)
    env = {**env_for(db_0023, tmp_path), "ROLLBOT_RUNBOOKS_DIR": str(runbooks)}
    previewed = rollbot("sql", "0040", env=env)
    planned = rollbot("plan", "0040", "--requested-by", REQUESTER, env=env)
    assert previewed.returncode == 0, previewed.stdout
    assert planned.returncode == 0, planned.stderr
    for done in (previewed, planned):
        shown = done.stdout + done.stderr
        assert not {"\x1b", "\x08", "\u202e", "\x07"} & set(shown)
        assert "evil\\x1b[2J\\x1b[1;1Happroved\\x08ok\\u202egnp.\\x07" in done.stdout
