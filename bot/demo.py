"""`rollbot demo`: the whole rollback on a throw-away PostgreSQL, printed as a user sees it.

It never touches a configured database: it starts an embedded server (pgserver), builds the
asset_forge schema as it stands after migration 0023 with a few thousand rows, then plans,
backs up, approves as a second person and executes the seed runbook.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import TextIO

import psycopg
from psycopg import sql

from bot.cli import TerminalNotifier
from bot.config import Settings, load_settings
from bot.embedded import embedded_server
from bot.errors import RollbotError
from bot.logs import configure_logging
from bot.messages import outcome_text, plan_text
from bot.run import RunState
from bot.sample import build_asset_forge
from bot.service import Rollbot
from bot.store import RunStore

REQUESTER = "U0ALICE"
APPROVER = "U0BOB"


def run_demo(out: TextIO | None = None, runbooks_dir: Path | None = None) -> int:
    """Run the demo; 0 when the rollback succeeded and verified."""
    out = out or sys.stdout
    runbooks = runbooks_dir or Path("runbooks")
    if not (runbooks / "0023_loud_shen.md").is_file():
        print(
            f"rollbot demo: {runbooks}/0023_loud_shen.md not found; run it from the "
            "repository root (make demo)",
            file=sys.stderr,
        )
        return 2
    configure_logging(level="warning")
    with tempfile.TemporaryDirectory(prefix="rollbot-demo-") as tmp:
        _say(out, "Starting an embedded PostgreSQL (pgserver) in a temporary directory…")
        with embedded_server(Path(tmp)) as server:
            conninfo = _create_database(server, "asset_forge")
            counts = build_asset_forge(conninfo, upto="0023")
            _say(
                out,
                f"Built asset_forge as it stands after 0023: {sum(counts.values()):,} rows "
                f"in {len(counts)} tables.",
            )
            settings = load_settings(
                database_url=conninfo,
                runbooks_dir=runbooks,
                backup_dir=Path(tmp) / "backups",
                approvers=(APPROVER,),
            )
            try:
                return _flow(out, settings)
            except RollbotError as exc:
                print(f"rollbot demo: {exc.render()}", file=sys.stderr)
                return 1


def _flow(out: TextIO, settings: Settings) -> int:
    store = RunStore(settings.target_conninfo())
    try:
        store.migrate()
        service = Rollbot(settings, store, notifier=TerminalNotifier(out))
        _say(out, f"\n$ rollbot plan 0023 --requested-by {REQUESTER}")
        run = service.request("0023", requested_by=REQUESTER)
        print(plan_text(run), file=out)
        if run.state is not RunState.AWAITING_APPROVAL:
            print(outcome_text(run), file=out)
            return 1
        _say(out, f"\n$ rollbot approve {run.id} --as {REQUESTER}   # the requester cannot")
        try:
            service.approve(run.id, REQUESTER)
        except RollbotError as exc:
            _say(out, f"refused: {exc.render()}")
        _say(out, f"\n$ rollbot approve {run.id} --as {APPROVER}")
        run = service.approve(run.id, APPROVER)
        print(outcome_text(run), file=out)
        return 0 if run.state is RunState.SUCCEEDED else 1
    finally:
        store.close()


def _create_database(server: str, name: str) -> str:
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    params = psycopg.conninfo.conninfo_to_dict(server)
    params["dbname"] = name
    return psycopg.conninfo.make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})


def _say(out: TextIO, text: str) -> None:
    print(text, file=out, flush=True)
