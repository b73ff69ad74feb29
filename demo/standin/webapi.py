"""A local stand-in for Slack's Web API, reachable over real HTTP on 127.0.0.1.

The bot under test keeps its real `WebClient`; only `base_url` points here. That way the
request encoding, the token header, retries on 429 and connection errors are exercised as they
will be against Slack, and tests assert on what Slack would have received. The same server
takes the raw file uploads of the v2 upload flow and the POSTs to `response_url`s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Self

from slack_sdk import WebClient

from demo.standin.faults import Faults, Script
from demo.standin.forms import Forms
from demo.standin.methods import WebApi
from demo.standin.model import Identity, User
from demo.standin.recording import CallLog
from demo.standin.server import RESPONSE_URL, UPLOAD, HttpFront, LoopbackHttpServer
from demo.standin.transcript import render_transcript
from demo.standin.workspace import SlackError, Workspace

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from types import TracebackType

    from demo.standin.faults import Outage
    from demo.standin.forms import OpenForm
    from demo.standin.model import JSON, Call, Message, SharedFile

__all__ = ["RESPONSE_URL", "UPLOAD", "SlackStandIn"]


class SlackStandIn:
    """Slack's Web API for one workspace and one app, with a recording of everything asked."""

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-standin",  # noqa: S107 - a fixture value, not a secret
        app_token: str = "xapp-standin",  # noqa: S107 - as above
        identity: Identity | None = None,
        scopes: Iterable[str] | None = None,
    ) -> None:
        self.bot_token = bot_token
        # The bot token's scopes; None: those slack/manifest.yml asks for.
        self._scopes = frozenset(scopes) if scopes is not None else None
        self.app_token = app_token
        self.identity = identity or Identity()
        self.workspace = Workspace(self.identity)
        self.call_log = CallLog()
        self.faults = Faults()
        self.forms = Forms(self.workspace.new_id)
        self._server: LoopbackHttpServer | None = None
        self._api: WebApi | None = None
        self._socket_url: Callable[[], str] | None = None

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind a free port on 127.0.0.1 and serve from a background thread."""
        if self._server is not None:
            return self
        self._server = LoopbackHttpServer()
        self._api = WebApi(
            self.workspace,
            bot_token=self.bot_token,
            app_token=self.app_token,
            base_url=self._server.base_url,
            forms=self.forms,
            scopes=self._scopes,
        )
        self._api.socket_url = self._socket_url
        self._server.start(HttpFront(self._api, self.faults, self.call_log).handle)
        return self

    def stop(self) -> None:
        """Stop serving and free the port."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT/`, the root of every URL the stand-in hands out."""
        return self._web.base_url

    @property
    def api_url(self) -> str:
        """The `base_url` for `WebClient`: `http://127.0.0.1:PORT/api/`."""
        return self.base_url + "api/"

    @property
    def _web(self) -> WebApi:
        if self._api is None:
            raise RuntimeError("the Slack stand-in is not started; call start() or use `with`")
        return self._api

    def client(self, **options: object) -> WebClient:
        """A `WebClient` with the bot token that talks to this stand-in."""
        return WebClient(token=self.bot_token, base_url=self.api_url, **options)  # type: ignore[arg-type]

    # -- the workspace -----------------------------------------------------------------------

    def add_user(
        self,
        user_id: str,
        name: str,
        *,
        real_name: str = "",
        deleted: bool = False,
        is_bot: bool = False,
    ) -> None:
        """Make a person known to `users.info` and to the transcript."""
        self.workspace.add_user(User(user_id, name, real_name, deleted=deleted, is_bot=is_bot))

    def add_usergroup(self, group_id: str, user_ids: Iterable[str], *, handle: str = "") -> None:
        """Define a group's members for `usergroups.users.list`."""
        self.workspace.add_usergroup(group_id, user_ids, handle)

    def add_channel(
        self, channel_id: str, name: str, *, member: bool = True, private: bool = False
    ) -> None:
        """Name a channel for payloads and the transcript; is the bot in it (conversations.info)."""
        self.workspace.add_channel(channel_id, name, member=member, private=private)

    def grant_scopes(self, scopes: Iterable[str]) -> None:
        """The bot token's scopes from now on, as if the app was reinstalled with them."""
        self._scopes = frozenset(scopes)
        if self._api is not None:
            self._api.scopes = self._scopes

    def add_user_message(
        self, channel: str, user: str, text: str, *, thread_ts: str | None = None
    ) -> str:
        """A message a person wrote (something to react to or reply under); returns its ts."""
        return self.workspace.post(channel, user, text=text, thread_ts=thread_ts, via="user").ts

    def new_response_url(
        self, *, channel_id: str = "", user_id: str = "", command_seq: int | None = None
    ) -> str:
        """A `response_url` for a payload; replies land for that user in that channel."""
        key = self.workspace.new_responder(channel_id, user_id, command_seq)
        return f"{self.base_url}commands/{self.identity.team_id}/{key}"

    def attach_socket_mode(self, url: Callable[[], str] | None) -> None:
        """Have `apps.connections.open` hand out URLs from a Socket Mode server (None detaches)."""
        self._socket_url = url
        if self._api is not None:
            self._api.socket_url = url

    # -- what happened -----------------------------------------------------------------------

    def calls(self, method: str | None = None, *, since: int = 0) -> list[Call]:
        """Every call received (or those of one method), oldest first."""
        return self.call_log.calls(method, since=since)

    def mark(self) -> int:
        """A position in the call log, for `since=` in `calls` and `wait_for`."""
        return self.call_log.mark()

    def wait_for(
        self,
        method: str,
        predicate: Callable[[Call], bool] | None = None,
        timeout: float = 5.0,
        *,
        since: int = 0,
    ) -> Call:
        """The first matching call, waiting up to `timeout` seconds for it to arrive."""
        return self.call_log.wait_for(method, predicate, timeout, since=since)

    def messages(self, channel: str | None = None) -> list[Message]:
        """Visible messages, replies included, oldest first."""
        return self.workspace.messages(channel)

    def ephemerals(self, channel: str | None = None, *, user: str | None = None) -> list[Message]:
        """Messages only one person could see, oldest first."""
        found = self.workspace.messages(channel, ephemeral=True)
        return [m for m in found if user is None or m.visible_to == user]

    def thread(self, channel: str, ts: str) -> list[Message]:
        """A thread's root and its replies, oldest first."""
        return self.workspace.thread(channel, ts)

    def message(self, channel: str, ts: str) -> Message | None:
        """One message as it looks now, or None."""
        try:
            return self.workspace.message(channel, ts)
        except SlackError:
            return None

    def forms_opened(self) -> list[OpenForm]:
        """Every modal the app opened (views.open), oldest first."""
        return self.forms.opened()

    def files(self) -> list[SharedFile]:
        """Files shared into conversations, oldest first."""
        return self.workspace.files()

    def transcript(self) -> str:
        """The conversation as a person would read it, threads under their parents."""
        return render_transcript(self.workspace.snapshot())

    # -- what the harness sends (reported by the sender and the Socket Mode server) ---------

    def note_command(self, channel_id: str, user_id: str, command: str, text: str) -> int:
        """Someone ran a slash command; it goes into the transcript (returns its place there)."""
        return self.workspace.note_command(channel_id, user_id, command, text)

    def note_event(self, event: JSON) -> None:
        """An event was delivered: a reaction is put on its message, others are just noted."""
        item = event.get("item") or {}
        user, channel = event.get("user"), event.get("channel") or item.get("channel")
        if event.get("type") != "reaction_added":
            self.workspace.note_event(channel, user, str(event.get("type")))
            return
        where = (str(channel), str(item.get("ts", "")), str(user), str(event.get("reaction")))
        try:
            self.workspace.react(*where)
        except SlackError:  # a message the stand-in never saw: still show that it happened
            self.workspace.note_reaction(*where)

    def command_answered(self, response_url: str, body: JSON | str) -> None:
        """The app's immediate answer to a slash command, shown as Slack would show it."""
        if isinstance(body, str):
            if not body.strip():
                return
            body = {"text": body}
        self._web.respond(response_url.rstrip("/").rsplit("/", 1)[-1], body, immediate=True)

    # -- scripted faults -----------------------------------------------------------------------

    def script_error(
        self,
        method: str,
        error: str,
        *,
        status: int = 200,
        retry_after: int | None = None,
        times: int = 1,
        match: Callable[[JSON], bool] | None = None,
    ) -> None:
        """Fail the next `times` calls of `method` with Slack's `error` (and HTTP `status`).

        `method` is a Web API method name, or `UPLOAD` / `RESPONSE_URL` for those endpoints;
        `match` limits the fault to calls whose decoded arguments satisfy it. The answer is
        what Slack sends on errors: `{"ok": false, "error": ...}` and nothing else.
        """
        self.faults.add(method, Script("error", times, error, status, retry_after, match=match))

    def script_garbage(
        self, method: str, *, times: int = 1, match: Callable[[JSON], bool] | None = None
    ) -> None:
        """Answer the next `times` calls with HTTP 200 and an HTML page, as a broken proxy does."""
        self.faults.add(method, Script("garbage", times, match=match))

    def script_malformed(
        self,
        method: str,
        *,
        drop: tuple[str, ...] = ("ts",),
        times: int = 1,
        match: Callable[[JSON], bool] | None = None,
    ) -> None:
        """Do the call, then answer `ok: true` without the `drop` fields (e.g. no `ts`)."""
        self.faults.add(method, Script("malformed", times, drop=drop, match=match))

    def script_slow(
        self,
        method: str,
        seconds: float,
        *,
        times: int = 1,
        match: Callable[[JSON], bool] | None = None,
    ) -> None:
        """Answer the next `times` calls as usual, but only after `seconds`."""
        self.faults.add(method, Script("slow", times, delay_s=seconds, match=match))

    def refuse_channel(self, channel: str, error: str | None = "not_in_channel") -> None:
        """Answer every call into `channel` with `error` (`not_in_channel`, `channel_not_found`).

        That is what Slack does while the bot is not a member; None lets it in again.
        """
        self.faults.refuse_channel(channel, error)

    def set_unavailable(self, unavailable: bool = True, *, how: Outage = "disconnect") -> None:
        """Make every request fail: the connection drops without an answer, or HTTP 503."""
        self.faults.set_outage(how if unavailable else None)

    def clear_faults(self) -> None:
        """Forget scripted faults, refused channels and unavailability."""
        self.faults.clear()
