"""The Slack stand-in, driven by slack_sdk and Bolt exactly as the bot drives Slack."""

from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

import pytest
from slack_bolt import Ack, App, Say
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator
from slack_sdk.signature import SignatureVerifier
from slack_sdk.webhook import WebhookClient

from demo.standin import SlackSender, SlackStandIn, serve_wsgi
from demo.standin.socket import SocketModeServer

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from demo.standin.model import JSON

SECRET = "signing-secret-for-tests"
OPS = "C0OPS"
ALICE = "U0ALICE"
BOB = "U0BOB"


def tiny_app(standin: SlackStandIn) -> App:
    """A Bolt app with one command and one event listener, talking to the stand-in."""
    client = WebClient(base_url=standin.api_url, token=standin.bot_token)
    app = App(client=client, signing_secret=SECRET)

    @app.command("/rollback")
    def rollback(ack: Ack, command: JSON, say: Say) -> None:
        ack(f"Planning {command['text']}...")
        say(
            text=f"Rollback plan for {command['text']}",
            blocks=[
                {"type": "header", "text": {"type": "plain_text", "text": "Rollback plan"}},
                {
                    "type": "section",
                    "text": {
                        "type": "mrkdwn",
                        "text": f"Revision `{command['text']}`, asked by <@{command['user_id']}>",
                    },
                },
                {
                    "type": "context",
                    "elements": [
                        {"type": "mrkdwn", "text": "React with :white_check_mark: to approve"}
                    ],
                },
            ],
        )

    @app.event("reaction_added")
    def reacted(event: JSON, client: WebClient) -> None:
        item = event["item"]
        client.chat_postMessage(
            channel=item["channel"],
            thread_ts=item["ts"],
            text=f"Approved by <@{event['user']}> with :{event['reaction']}:",
        )

    return app


@pytest.fixture
def workspace(standin: SlackStandIn) -> SlackStandIn:
    standin.add_channel(OPS, "ops")
    standin.add_user(ALICE, "alice", real_name="Alice Adams")
    standin.add_user(BOB, "bob")
    return standin


@contextmanager
def served(standin: SlackStandIn) -> Iterator[SlackSender]:
    """The tiny app behind waitress, and a sender aimed at its Request URL."""
    with serve_wsgi(SlackRequestHandler(tiny_app(standin))) as root:
        yield SlackSender(root + "/slack/events", SECRET, standin)


def test_web_client_round_trip_is_recorded_with_bodies(workspace: SlackStandIn) -> None:
    """Posts, threads, edits, ephemerals, links and reactions act as in Slack and are recorded."""
    client = workspace.client()
    posted = client.chat_postMessage(channel=OPS, text="first", blocks=[{"type": "divider"}])
    ts = posted["ts"]
    assert posted["channel"] == OPS
    assert posted["message"]["bot_id"] == workspace.identity.bot_id
    reply = client.chat_postMessage(channel=OPS, text="in thread", thread_ts=ts)
    nested = client.chat_postMessage(channel=OPS, text="reply to reply", thread_ts=reply["ts"])
    assert nested["message"]["thread_ts"] == ts
    assert float(reply["ts"]) > float(ts)

    updated = client.chat_update(channel=OPS, ts=ts, text="first, edited")
    assert updated["message"]["edited"]["user"] == workspace.identity.bot_user_id
    ephemeral = client.chat_postEphemeral(channel=OPS, user=ALICE, text="only you")
    link = client.chat_getPermalink(channel=OPS, message_ts=reply["ts"])["permalink"]
    client.reactions_add(channel=OPS, timestamp=ts, name="eyes")

    assert link.startswith(workspace.base_url + f"archives/{OPS}/p{reply['ts'].replace('.', '')}")
    assert f"thread_ts={ts}" in link
    assert [m.text for m in workspace.thread(OPS, ts)] == [
        "first, edited",
        "in thread",
        "reply to reply",
    ]
    first = workspace.message(OPS, ts)
    assert first is not None
    assert first.edited
    assert [(r.name, r.user) for r in first.reactions] == [("eyes", workspace.identity.bot_user_id)]
    assert [m.ts for m in workspace.ephemerals(OPS, user=ALICE)] == [ephemeral["message_ts"]]

    post = workspace.calls("chat.postMessage")[0]
    assert post.params == {"channel": OPS, "text": "first", "blocks": [{"type": "divider"}]}
    assert post.headers["content-type"].startswith("application/json")
    assert post.token == workspace.bot_token
    reaction = workspace.calls("reactions.add")[0]
    assert reaction.params == {"channel": OPS, "timestamp": ts, "name": "eyes"}
    assert reaction.headers["content-type"] == "application/x-www-form-urlencoded"
    with pytest.raises(SlackApiError) as error:
        client.reactions_add(channel=OPS, timestamp=ts, name="eyes")
    assert error.value.response["error"] == "already_reacted"


def test_scopes_and_channel_membership_are_answered_as_slack_answers_them(
    workspace: SlackStandIn,
) -> None:
    """x-oauth-scopes on every answer, missing_scope naming the scope, is_member per channel."""
    workspace.add_channel("C0OUT", "elsewhere", member=False)
    workspace.add_channel("G0SECRET", "secret", member=False, private=True)
    client = workspace.client()
    auth = client.auth_test()
    granted = set(str(auth.headers["x-oauth-scopes"]).split(","))
    assert {"chat:write", "channels:read", "groups:read"} <= granted
    assert client.conversations_info(channel=OPS)["channel"]["is_member"] is True
    outside = client.conversations_info(channel="C0OUT")["channel"]
    assert (outside["name"], outside["is_member"], outside["is_private"]) == (
        "elsewhere",
        False,
        False,
    )
    for hidden in ("G0SECRET", "C0NOSUCH"):
        with pytest.raises(SlackApiError) as error:
            client.conversations_info(channel=hidden)
        assert error.value.response["error"] == "channel_not_found"

    workspace.grant_scopes(granted - {"channels:read", "chat:write"})
    with pytest.raises(SlackApiError) as error:
        client.conversations_info(channel=OPS)
    assert error.value.response["error"] == "missing_scope"
    assert error.value.response["needed"] == "channels:read"
    assert "channels:read" not in error.value.response["provided"].split(",")
    with pytest.raises(SlackApiError) as error:
        client.chat_postMessage(channel=OPS, text="hello")
    assert error.value.response["needed"] == "chat:write"
    assert workspace.messages(OPS) == []


def test_unknown_records_and_tokens_get_slacks_errors(workspace: SlackStandIn) -> None:
    """Unknown messages, users, groups, methods and tokens fail with Slack's own error codes."""
    workspace.add_usergroup("S0DBA", [ALICE, BOB], handle="dba")
    client = workspace.client()
    assert client.usergroups_users_list(usergroup="S0DBA")["users"] == [ALICE, BOB]
    assert client.users_info(user=ALICE)["user"]["real_name"] == "Alice Adams"
    expected = {
        "chat.update": "message_not_found",
        "users.info": "user_not_found",
        "usergroups.users.list": "no_such_subteam",
        "chat.unfurl": "unknown_method",
    }
    arguments: dict[str, JSON] = {
        "chat.update": {"channel": OPS, "ts": "1.000001", "text": "x"},
        "users.info": {"user": "U0NOBODY"},
        "usergroups.users.list": {"usergroup": "S0NONE"},
        "chat.unfurl": {"channel": OPS},
    }
    for method, body in arguments.items():
        with pytest.raises(SlackApiError) as error:
            client.api_call(method, json=body)
        assert error.value.response["error"] == expected[method], method
    assert workspace.calls("chat.unfurl")[0].error == "unknown_method"

    for token, code in [(None, "not_authed"), ("xoxb-forged", "invalid_auth")]:
        with pytest.raises(SlackApiError) as error:
            WebClient(base_url=workspace.api_url, token=token).auth_test()
        assert error.value.response["error"] == code
    with pytest.raises(SlackApiError) as error:
        WebClient(base_url=workspace.api_url, token=workspace.app_token).chat_postMessage(
            channel=OPS, text="x"
        )
    assert error.value.response["error"] == "not_allowed_token_type"
    with pytest.raises(SlackApiError) as error:
        WebClient(base_url=workspace.api_url).apps_connections_open(app_token=workspace.app_token)
    assert error.value.response["error"] == "socket_mode_not_enabled"


def test_rate_limit_is_retried_after_retry_after(workspace: SlackStandIn) -> None:
    """A scripted 429 is retried by slack_sdk's handler after waiting at least Retry-After."""
    client = workspace.client(retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)])
    ts = client.chat_postMessage(channel=OPS, text="before")["ts"]
    workspace.script_error("chat.update", "ratelimited", status=429, retry_after=1)

    started = time.monotonic()
    client.chat_update(channel=OPS, ts=ts, text="after")
    waited = time.monotonic() - started

    limited, accepted = workspace.calls("chat.update")
    assert waited >= 1.0
    assert accepted.at - limited.at >= 1.0
    assert (limited.status, limited.fault, limited.error) == (429, "scripted", "ratelimited")
    assert (accepted.status, accepted.fault) == (200, None)
    message = workspace.message(OPS, ts)
    assert message is not None
    assert message.text == "after"


def test_rate_limit_without_retry_handler_surfaces(workspace: SlackStandIn) -> None:
    """Without a rate-limit handler the 429 reaches the caller with its Retry-After header."""
    workspace.script_error("chat.postMessage", "ratelimited", status=429, retry_after=3)
    with pytest.raises(SlackApiError) as error:
        workspace.client().chat_postMessage(channel=OPS, text="x")
    assert error.value.response.status_code == 429
    assert error.value.response.headers["Retry-After"] == "3"
    assert workspace.messages() == []


def test_scripted_error_surfaces_and_has_no_effect(workspace: SlackStandIn) -> None:
    """A scripted `channel_not_found` raises SlackApiError, posts nothing, and runs out."""
    client = workspace.client()
    workspace.script_error("chat.postMessage", "channel_not_found", times=2)
    for _ in range(2):
        with pytest.raises(SlackApiError) as error:
            client.chat_postMessage(channel=OPS, text="lost")
        assert error.value.response["error"] == "channel_not_found"
    assert workspace.messages() == []
    client.chat_postMessage(channel=OPS, text="delivered")
    assert [m.text for m in workspace.messages(OPS)] == ["delivered"]
    assert [c.fault for c in workspace.calls("chat.postMessage")] == ["scripted", "scripted", None]


def test_a_refused_channel_answers_like_slack_ok_false_and_error_only(
    workspace: SlackStandIn,
) -> None:
    """A channel the bot is not in refuses every call into it with `{ok, error}` and no more."""
    client = workspace.client()
    workspace.refuse_channel(OPS, "not_in_channel")
    calls: list[Callable[[], object]] = [
        lambda: client.chat_postMessage(channel=OPS, text="x"),
        lambda: client.chat_postEphemeral(channel=OPS, user=ALICE, text="x"),
        lambda: client.files_upload_v2(channel=OPS, content="x", filename="a.sql"),
    ]
    for call in calls:
        with pytest.raises(SlackApiError) as error:
            call()
        assert error.value.response.data == {"ok": False, "error": "not_in_channel"}
    assert workspace.messages() == []
    assert workspace.files() == []
    workspace.refuse_channel(OPS, None)
    client.chat_postMessage(channel=OPS, text="let in")
    assert [m.text for m in workspace.messages(OPS)] == ["let in"]


def test_garbage_malformed_and_slow_answers_hit_only_the_calls_they_match(
    workspace: SlackStandIn,
) -> None:
    """HTML instead of JSON, `ok` without a ts, a slow answer: each for the matching call only."""
    client = workspace.client()
    workspace.script_garbage("chat.postMessage", match=lambda p: p.get("text") == "garbage")
    workspace.script_malformed("chat.postMessage", match=lambda p: p.get("text") == "no ts")
    workspace.script_slow("chat.postMessage", 0.5, match=lambda p: p.get("text") == "slow")
    with pytest.raises(SlackApiError) as error:
        client.chat_postMessage(channel=OPS, text="garbage")
    assert "non-JSON" in str(error.value.response["error"])
    answer = client.chat_postMessage(channel=OPS, text="no ts")
    assert answer["ok"] is True
    assert "ts" not in answer.data
    started = time.monotonic()
    client.chat_postMessage(channel=OPS, text="slow")
    assert time.monotonic() - started >= 0.5
    client.chat_postMessage(channel=OPS, text="garbage")  # the fault was used up
    assert [m.text for m in workspace.messages(OPS)] == ["no ts", "slow", "garbage"]
    faults = [c.fault for c in workspace.calls("chat.postMessage")]
    assert faults == ["garbage", "malformed", "slow", None]


def test_blocks_slack_refuses_are_refused(workspace: SlackStandIn) -> None:
    """Blocks slack_sdk's models reject, or past Slack's 50, are `invalid_blocks`; nothing posts."""
    client = workspace.client()
    too_long = [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}]
    too_many = [{"type": "divider"}] * 51
    for blocks in (too_long, too_many, [{"type": "section"}], [{"type": "no_such_block"}]):
        with pytest.raises(SlackApiError) as error:
            client.chat_postMessage(channel=OPS, text="x", blocks=blocks)
        assert error.value.response["error"] == "invalid_blocks"
    with pytest.raises(SlackApiError) as error:
        client.chat_postMessage(channel=OPS, text="x" * 40_001)
    assert error.value.response["error"] == "msg_too_long"
    assert workspace.messages() == []


def test_unavailable_fails_until_cleared(workspace: SlackStandIn) -> None:
    """While unavailable, calls fail (dropped connection or 503) and succeed again once cleared."""
    client = workspace.client(retry_handlers=[])
    workspace.set_unavailable(True)
    with pytest.raises(ConnectionError):
        client.chat_postMessage(channel=OPS, text="dropped")
    workspace.set_unavailable(True, how="503")
    with pytest.raises(SlackApiError) as error:
        client.chat_postMessage(channel=OPS, text="refused")
    assert error.value.response.status_code == 503
    workspace.set_unavailable(False)
    client.chat_postMessage(channel=OPS, text="back")
    assert [m.text for m in workspace.messages()] == ["back"]
    assert [c.fault for c in workspace.calls()] == ["unavailable", "unavailable", None]


def test_connection_retry_handler_rides_out_an_outage(workspace: SlackStandIn) -> None:
    """slack_sdk's ConnectionErrorRetryHandler retries dropped connections until Slack is back."""
    retry = ConnectionErrorRetryHandler(
        max_retry_count=20, interval_calculator=FixedValueRetryIntervalCalculator(0.05)
    )
    client = workspace.client(retry_handlers=[retry])
    workspace.set_unavailable(True)
    threading.Timer(0.3, workspace.set_unavailable, args=(False,)).start()
    client.chat_postMessage(channel=OPS, text="eventually")
    faults = [c.fault for c in workspace.calls("chat.postMessage")]
    assert faults[-1] is None
    assert faults.count("unavailable") >= 2
    assert [m.text for m in workspace.messages()] == ["eventually"]


def test_files_upload_v2_shares_the_file_into_the_thread(workspace: SlackStandIn) -> None:
    """`files_upload_v2` gets an upload URL, uploads the bytes and shares the file in the thread."""
    client = workspace.client()
    ts = client.chat_postMessage(channel=OPS, text="plan")["ts"]
    sql = "BEGIN;\nDROP INDEX ix_orders_created;\nCOMMIT;\n"

    result = client.files_upload_v2(content=sql, filename="plan.sql", channel=OPS, thread_ts=ts)

    assert result["file"]["name"] == "plan.sql"
    upload = workspace.wait_for("upload")
    assert upload.raw == sql.encode()
    complete = workspace.calls("files.completeUploadExternal")[0]
    assert complete.params["files"] == [{"id": result["file"]["id"], "title": "plan.sql"}]
    (shared,) = workspace.files()
    assert (shared.name, shared.text) == ("plan.sql", sql)
    root, reply = workspace.thread(OPS, ts)
    assert reply.files == (shared,)
    assert root.text == "plan"


def test_response_url_replies_land_as_slack_shows_them(workspace: SlackStandIn) -> None:
    """Response URL replies are ephemeral by default, may replace the last one, or go in channel."""
    url = workspace.new_response_url(channel_id=OPS, user_id=ALICE)
    webhook = WebhookClient(url)
    assert webhook.send(text="Taking a backup...").status_code == 200
    webhook.send(text="Backup taken", replace_original=True)
    webhook.send(text="Plan ready", response_type="in_channel")

    assert [(m.text, m.edited) for m in workspace.ephemerals(OPS, user=ALICE)] == [
        ("Backup taken", True)
    ]
    assert [m.text for m in workspace.messages(OPS)] == ["Plan ready"]
    assert workspace.calls("response_url")[0].params == {"text": "Taking a backup..."}
    unknown = WebhookClient(workspace.base_url + "commands/T0STANDIN/unknown").send(text="x")
    assert (unknown.status_code, unknown.body) == (404, "no_service")


def test_sender_speaks_slacks_wire_format(workspace: SlackStandIn) -> None:
    """Every delivery passes slack_sdk's SignatureVerifier and uses Slack's fields and headers."""
    received: list[tuple[dict[str, str], bytes]] = []

    def recorder(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        headers = {
            k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")
        }
        headers["content-type"] = environ.get("CONTENT_TYPE", "")
        received.append((headers, body))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b""]

    mention = {"type": "app_mention", "user": ALICE, "channel": OPS, "text": "hi", "ts": "1.000100"}
    with serve_wsgi(recorder) as root:
        sender = SlackSender(root + "/slack/events", SECRET, workspace)
        sender.slash_command("plan 0042", user_id=ALICE, channel_id=OPS)
        first = sender.event(mention)
        sender.event(
            mention, event_id=first.payload["event_id"], retry_num=1, retry_reason="http_timeout"
        )

    verifier = SignatureVerifier(SECRET)
    for headers, body in received:
        assert verifier.is_valid(
            body, headers["x-slack-request-timestamp"], headers["x-slack-signature"]
        )
    (command_headers, command_body), (_, event_body), (retry_headers, retry_body) = received
    assert command_headers["content-type"] == "application/x-www-form-urlencoded"
    command = dict(parse_qsl(command_body.decode()))
    assert command["command"] == "/rollback"
    assert (command["text"], command["user_name"], command["channel_name"]) == (
        "plan 0042",
        "alice",
        "ops",
    )
    assert command["response_url"].startswith(workspace.base_url + "commands/")
    assert set(command) >= {"token", "team_id", "team_domain", "api_app_id", "trigger_id"}
    envelope = json.loads(event_body)
    assert envelope["type"] == "event_callback"
    assert envelope["event"] == mention
    assert envelope["authorizations"][0]["user_id"] == workspace.identity.bot_user_id
    assert set(envelope) >= {"event_id", "event_time", "is_ext_shared_channel", "event_context"}
    assert json.loads(retry_body)["event_id"] == envelope["event_id"]
    assert (retry_headers["x-slack-retry-num"], retry_headers["x-slack-retry-reason"]) == (
        "1",
        "http_timeout",
    )
    assert workspace.transcript().count("app_mention") == 1, "a retry is the same event, noted once"


def test_sender_only_targets_loopback(workspace: SlackStandIn) -> None:
    """The sender refuses any Request URL that is not on the loopback interface."""
    with pytest.raises(ValueError, match="loopback"):
        SlackSender("http://192.0.2.1/slack/events", SECRET, workspace)


def test_bolt_over_http_acks_posts_and_answers_events(workspace: SlackStandIn) -> None:
    """A signed slash command gets 200 and its listener posts; a signed reaction reaches its own."""
    with served(workspace) as sender:
        assert sender.url_verification("c-123").json() == {"challenge": "c-123"}
        assert sender.ssl_check().status == 200

        answer = sender.slash_command("0042_add_index", user_id=ALICE, channel_id=OPS)
        assert (answer.status, answer.body) == (200, "Planning 0042_add_index...")
        plan = workspace.wait_for("chat.postMessage")
        assert plan.params["channel"] == OPS
        assert plan.params["text"] == "Rollback plan for 0042_add_index"
        ts = plan.response["ts"] if isinstance(plan.response, dict) else ""

        delivered = sender.reaction_added(BOB, "white_check_mark", OPS, ts)
        assert delivered.status == 200
        assert delivered.payload["event"]["item_user"] == workspace.identity.bot_user_id
        approval = workspace.wait_for("chat.postMessage", lambda c: c.params.get("thread_ts") == ts)
        assert approval.params["text"] == f"Approved by <@{BOB}> with :white_check_mark:"
        assert workspace.calls("auth.test"), "Bolt checks its token with auth.test at start-up"


def test_bolt_refuses_forged_and_stale_requests(workspace: SlackStandIn) -> None:
    """A wrong signing secret or a timestamp over five minutes old gets 401 and posts nothing."""
    with served(workspace) as sender:
        forged = sender.forged(signing_secret="not-the-secret").slash_command(
            "x", user_id=ALICE, channel_id=OPS
        )
        stale = sender.forged(age=6 * 60).slash_command("x", user_id=ALICE, channel_id=OPS)
        assert (forged.status, stale.status) == (401, 401)

        before = workspace.mark()
        sender.slash_command("genuine", user_id=ALICE, channel_id=OPS)
        workspace.wait_for("chat.postMessage", since=before)
        assert [c.params["text"] for c in workspace.calls("chat.postMessage")] == [
            "Rollback plan for genuine"
        ]


@contextmanager
def socket_mode(standin: SlackStandIn, *, ping_interval: float = 10) -> Iterator[SocketModeServer]:
    """The tiny app connected through Bolt's SocketModeHandler to a local Socket Mode server."""
    server = SocketModeServer(standin).start()
    handler = SocketModeHandler(
        tiny_app(standin), app_token=standin.app_token, ping_interval=ping_interval
    )
    handler.connect()  # type: ignore[no-untyped-call]  # Bolt leaves it unannotated
    try:
        server.wait_for_connection()
        yield server
    finally:
        # Server first: slack_sdk's close() otherwise waits out its 3-second receive timeout.
        server.stop()
        handler.close()  # type: ignore[no-untyped-call]  # as above


def test_bolt_over_socket_mode_acks_and_posts(workspace: SlackStandIn) -> None:
    """Bolt's SocketModeHandler connects over ws://, acks a slash command and its listener posts."""
    with socket_mode(workspace) as server:
        envelope = server.send_slash_command("0042_add_index", user_id=ALICE, channel_id=OPS)
        assert server.wait_for_ack(envelope).payload == {"text": "Planning 0042_add_index..."}
        plan = workspace.wait_for("chat.postMessage")
        assert plan.params["text"] == "Rollback plan for 0042_add_index"
        assert workspace.calls("apps.connections.open")[0].token == workspace.app_token
        assert workspace.ephemerals(OPS, user=ALICE)[0].text == "Planning 0042_add_index..."


def test_socket_mode_client_reconnects(workspace: SlackStandIn) -> None:
    """After a `disconnect` message or a server-side close, the client reconnects and gets work."""
    with socket_mode(workspace, ping_interval=0.2) as server:
        ts = workspace.add_user_message(OPS, ALICE, "please roll back 0042")
        server.send_disconnect()
        server.wait_for_connection(count=2)
        server.close_connections()
        server.wait_for_connection(count=3)

        envelope = server.reaction_added(BOB, "+1", OPS, ts)
        assert server.wait_for_ack(envelope).payload is None
        assert workspace.wait_for("chat.postMessage").params["thread_ts"] == ts
        assert len(workspace.calls("apps.connections.open")) == 3


def test_transcript_reads_like_the_conversation(workspace: SlackStandIn) -> None:
    """The transcript shows commands, ephemerals, threads, reactions, edits, snippets in order."""
    with served(workspace) as sender:
        sender.slash_command("0042_add_index", user_id=ALICE, channel_id=OPS)
        ts = workspace.wait_for("chat.postMessage").response["ts"]  # type: ignore[index]
        sender.reaction_added(BOB, "white_check_mark", OPS, ts)
        workspace.wait_for("chat.postMessage", lambda c: c.params.get("thread_ts") == ts)
    client = workspace.client()
    client.files_upload_v2(
        content="BEGIN;\nDROP INDEX ix;\nCOMMIT;\n",
        filename="plan.sql",
        channel=OPS,
        thread_ts=ts,
        title="Rollback SQL",
    )
    client.chat_update(channel=OPS, ts=ts, text="Rolled back 0042_add_index", blocks=[])
    client.chat_postMessage(channel=ALICE, text="Your rollback finished")

    assert workspace.transcript().splitlines() == [
        "#ops  @alice: /rollback 0042_add_index",
        "#ops  rollbot (only visible to @alice): Planning 0042_add_index...",
        "#ops  rollbot: Rolled back 0042_add_index (edited)",
        "      ↳ @bob reacted :white_check_mark:",
        "      ↳ rollbot: Approved by @bob with :white_check_mark:",
        "      ↳ rollbot: uploaded plan.sql (Rollback SQL)",
        "          | BEGIN;",
        "          | DROP INDEX ix;",
        "          | COMMIT;",
        "",
        "DM @alice  rollbot: Your rollback finished",
    ]
