"""A refused privilege reaches the requester in Slack as the same clear message as the CLI."""

import time
from collections.abc import Callable

from tests.fix_db import Role
from tests.fix_rollbot import REQUESTER
from tests.fix_slackbot import REQUEST_CHANNEL, SlackBot

TABLE = "api_errors"  # dropped by 0023's runbook, so the plan counts its rows


def test_a_missing_select_is_told_to_the_requester_with_the_grant(
    db_0023: str, make_role: Callable[[], Role], make_slackbot: Callable[..., SlackBot]
) -> None:
    """/rollback 0023 as a role without SELECT on a table: the GRANT, not "unexpected error"."""
    role = make_role()
    role.run(
        db_0023,
        "GRANT USAGE ON SCHEMA public, drizzle TO {role}",
        "GRANT SELECT ON ALL TABLES IN SCHEMA public, drizzle TO {role}",
        f"REVOKE SELECT ON public.{TABLE} FROM {{role}}",
    )
    bot = make_slackbot(role.conninfo(db_0023), state_url=db_0023)
    mark = bot.standin.mark()
    delivery = bot.sender.slash_command("0023", user_id=REQUESTER, channel_id=REQUEST_CHANNEL)
    assert delivery.status == 200
    deadline = time.monotonic() + 30
    while True:
        answers = [c.params.get("text", "") for c in bot.standin.calls("response_url", since=mark)]
        final = [a for a in answers if "GRANT" in a or "unexpected" in a]
        if final:
            break
        assert time.monotonic() < deadline, answers
        time.sleep(0.1)
    (text,) = final
    assert "unexpected" not in text
    assert f"role {role.name} lacks SELECT on table public.{TABLE}" in text
    assert f"GRANT SELECT ON public.{TABLE} TO {role.name};" in text
    assert "permission denied" in text
    assert bot.components.store.recent() == []
