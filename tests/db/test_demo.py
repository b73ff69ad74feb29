"""`rollbot demo` runs on an embedded PostgreSQL and shows the conversation it promises."""

import io

import pytest

from demo.conversation import run_demo
from tests.fix_rollbot import RUNBOOKS


@pytest.mark.slow
def test_demo_shows_the_slack_conversation_and_the_counts() -> None:
    """The transcript has the request, the refused self-approval, and the verified counts."""
    out = io.StringIO()
    assert run_demo(out=out, runbooks_dir=RUNBOOKS) == 0
    text = out.getvalue()
    assert "#ops  @alice: /rollback 0023" in text
    assert "@alice: you requested run 1, so you cannot approve it" in text
    assert "@bob reacted :white_check_mark:" in text
    assert "#incident  rollbot:" in text
    assert "To undo this rollback: rollbot restore 1 --requested-by NAME" in text
    assert text.rstrip().splitlines()[-1].startswith("By hand: pg_restore")
    assert "public.api_errors: 900 / 900 / 900" in text
