"""`rollbot demo` runs on an embedded PostgreSQL and shows the conversation it promises."""

import io

import pytest

from demo.conversation import run_demo
from tests.fix_rollbot import RUNBOOKS


@pytest.mark.slow
def test_demo_shows_the_slack_conversation_and_the_counts() -> None:
    """The request, the approvers' call, the refused self-approval, the button, the counts."""
    out = io.StringIO()
    assert run_demo(out=out, runbooks_dir=RUNBOOKS) == 0
    text = out.getvalue()
    assert "#ops  @alice: /rollback 0023" in text
    assert "@alice: you requested run 1, so you cannot approve it" in text
    assert "rollbot: @bob: Rollback run 1 of `0023_loud_shen`" in text
    assert "awaits your approval" in text
    assert "@alice reacted :white_check_mark:" in text
    assert "@bob pressed [Approve]" in text
    assert "#incident  rollbot:" in text
    assert "To undo this rollback: rollbot restore 1 --requested-by NAME" in text
    # The demo runs in quarantine mode, the default: the undo is a move back, not a pg_restore.
    assert text.rstrip().splitlines()[-1].startswith("To undo this rollback: rollbot restore 1")
    assert "By hand: pg_restore" not in text
    assert "public.api_errors: 900 / pending / - (moved aside)" in text
