"""`rollbot demo`: the whole Slack conversation on this machine, printed as a transcript.

It never touches a configured database or Slack: an embedded PostgreSQL (pgserver) holds the
asset_forge schema as it stands after migration 0023 with a few thousand rows; rollbot runs in
HTTP mode on loopback; a stand-in for Slack's Web API records what the bot says. Alice types
`/rollback 0023`; rollbot calls Bob, the approver, in the plan's thread; Alice tries to approve
her own request with the ✅ reaction and is refused; Bob presses the plan's Approve button
(after Slack's confirmation); the transcript ends with the verification counts.
"""

from __future__ import annotations

import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import psycopg
from psycopg import sql

from bot.app import Components, build
from bot.config import load_settings
from bot.core.errors import RollbotError
from bot.core.states import FINAL
from bot.core.text import outcome_text
from bot.logs import configure_logging
from bot.pgclient.embedded import embedded_server
from bot.slack.buttons import APPROVE_ACTION
from demo.sample import MIGRATIONS_DIR, build_asset_forge
from demo.standin import SlackSender, SlackStandIn, serve_wsgi

if TYPE_CHECKING:
    from bot.core.run import Run

ALICE, BOB = "U0ALICE", "U0BOB"
OPS, INCIDENT = "C0OPS", "C0INCIDENT"


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
        with embedded_server(Path(tmp)) as server, SlackStandIn() as slack:
            conninfo = _create_database(server, "asset_forge")
            counts = build_asset_forge(conninfo, upto="0023")
            _say(
                out,
                f"Built asset_forge as it stands after 0023: {sum(counts.values()):,} rows in "
                f"{len(counts)} tables. Slack is a local stand-in at {slack.api_url}.\n",
            )
            try:
                return _conversation(out, slack, conninfo, runbooks, Path(tmp) / "backups")
            except (RollbotError, TimeoutError) as exc:
                print(f"rollbot demo: {exc}", file=sys.stderr)
                return 1


def _conversation(
    out: TextIO, slack: SlackStandIn, conninfo: str, runbooks: Path, backups: Path
) -> int:
    for user_id, name in ((ALICE, "alice"), (BOB, "bob")):
        slack.add_user(user_id, name)
    slack.add_channel(OPS, "ops")
    slack.add_channel(INCIDENT, "incident")
    signing_secret = secrets.token_hex(16)
    settings = load_settings(
        database_url=conninfo,
        runbooks_dir=runbooks,
        backup_dir=backups,
        approvers=(BOB,),
        slack_bot_token=slack.bot_token,
        slack_signing_secret=signing_secret,
        slack_api_url=slack.api_url,
        incident_channel=INCIDENT,
        migrations_dir=MIGRATIONS_DIR,
    )
    components = build(settings)
    components.start()
    try:
        with serve_wsgi(components.wsgi()) as url:
            sender = SlackSender(f"{url}/slack/events", signing_secret, slack)
            sender.slash_command("0023", user_id=ALICE, channel_id=OPS)
            slack.wait_for("response_url", timeout=120)
            run = components.store.recent()[0]
            _drain(components)
            where = components.deliveries.slack_message(run.id, "plan")
            if where is None:
                raise RollbotError("The plan message was not posted")
            sender.reaction_added(ALICE, settings.approval_reaction, *where)
            sender.press(BOB, *where, APPROVE_ACTION)
            run = _finished(components, run.id)
            _drain(components)
        print(slack.transcript(), file=out)
        _say(out, "Verification:")
        print(outcome_text(run), file=out)
        return 0 if run.state.value == "succeeded" else 1
    finally:
        components.stop()


def _finished(components: Components, run_id: int, timeout: float = 300.0) -> Run:
    deadline = time.monotonic() + timeout
    while (run := components.store.get(run_id)).state not in FINAL:
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id} is still {run.state.value}")
        time.sleep(0.1)
    return run


def _drain(components: Components, timeout: float = 30.0) -> None:
    """Wait for the courier to deliver everything due, so the transcript is complete."""
    deadline = time.monotonic() + timeout
    while any(p.due for p in components.deliveries.pending()) and time.monotonic() < deadline:
        components.courier.wake()
        time.sleep(0.05)


def _create_database(server: str, name: str) -> str:
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    params = psycopg.conninfo.conninfo_to_dict(server)
    params["dbname"] = name
    return psycopg.conninfo.make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})


def _say(out: TextIO, text: str) -> None:
    print(text, file=out, flush=True)
