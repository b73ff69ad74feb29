"""The Web API methods the bot uses, answered the way Slack answers them.

Each method reads the decoded arguments, changes the workspace and returns the JSON slack_sdk
and Bolt expect (`ok`, the ids they read back, Slack's error codes). The HTTP layer stays out
of it, so a method is a plain function from arguments to an answer.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeAlias

import yaml
from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block

from demo.standin.forms import Forms
from demo.standin.uploads import Uploads
from demo.standin.wire import flag, list_arg, text_arg
from demo.standin.workspace import SlackError, Workspace

if TYPE_CHECKING:
    from collections.abc import Callable

    from demo.standin.model import JSON, Message

Caller: TypeAlias = Literal["bot", "app"]


@dataclass(frozen=True)
class Reply:
    """An HTTP answer: status, JSON object or plain text, extra headers."""

    status: int
    body: JSON | str
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str | None = None  # None: JSON for objects, plain text for strings


MANIFEST = Path(__file__).parents[2] / "slack" / "manifest.yml"
# The scope Slack requires of a bot token for each method (conversations.info: see there).
# reactions.add is left out: the harness uses it to react as a person would.
METHOD_SCOPES: dict[str, str] = {
    "chat.postMessage": "chat:write",
    "chat.update": "chat:write",
    "chat.delete": "chat:write",
    "chat.postEphemeral": "chat:write",
    "reactions.get": "reactions:read",
    "users.info": "users:read",
    "usergroups.users.list": "usergroups:read",
    "files.getUploadURLExternal": "files:write",
    "files.completeUploadExternal": "files:write",
}


def manifest_scopes() -> frozenset[str]:
    """The bot scopes the app manifest asks for: what an installed app's token holds."""
    loaded = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    return frozenset(loaded["oauth_config"]["scopes"]["bot"])


class MissingScopeError(Exception):
    """A method called without its scope; Slack names the scope needed and those provided."""

    def __init__(self, needed: str) -> None:
        super().__init__(needed)
        self.needed = needed


def ok(**fields: object) -> Reply:
    """A successful Web API answer."""
    return Reply(200, {"ok": True, **fields})


def failed(code: str) -> Reply:
    """A failed Web API answer; Slack says so with HTTP 200 and `ok: false`."""
    return Reply(200, {"ok": False, "error": code})


# Slack's documented limits: chat.postMessage truncates past 40,000 characters (rollbot must
# never get there) and a message holds at most 50 blocks.
MAX_TEXT = 40_000
MAX_BLOCKS = 50


def check_blocks(blocks: object) -> None:
    """Refuse blocks Slack refuses: not a list, too many, or one slack_sdk's models reject."""
    if not isinstance(blocks, list) or not all(isinstance(b, dict) for b in blocks):
        raise SlackError("invalid_blocks_format")
    if len(blocks) > MAX_BLOCKS:
        raise SlackError("invalid_blocks")
    for raw in blocks:
        block = Block.parse(raw)
        if block is None:
            raise SlackError("invalid_blocks")
        try:
            block.validate_json()
        except SlackObjectFormationError as exc:
            raise SlackError("invalid_blocks") from exc


class WebApi:
    """Slack's Web API over one workspace, for a bot token and an app-level token."""

    def __init__(
        self,
        workspace: Workspace,
        *,
        bot_token: str,
        app_token: str,
        base_url: str,
        forms: Forms | None = None,
        scopes: frozenset[str] | None = None,
    ) -> None:
        self.workspace = workspace
        self.scopes = manifest_scopes() if scopes is None else scopes
        self.forms = forms or Forms(workspace.new_id)
        self.uploads = Uploads(workspace.new_id)
        self.base_url = base_url
        self._tokens: dict[str, Caller] = {bot_token: "bot", app_token: "app"}
        self.socket_url: Callable[[], str] | None = None
        self._methods: dict[str, Callable[[JSON], Reply]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.delete": self._delete,
            "chat.postEphemeral": self._post_ephemeral,
            "chat.getPermalink": self._permalink,
            "reactions.add": self._react,
            "reactions.get": self._reactions_get,
            "users.info": self._users_info,
            "usergroups.users.list": self._usergroup_users,
            "files.getUploadURLExternal": self._upload_url,
            "files.completeUploadExternal": self._complete_upload,
            "views.open": self._views_open,
            "conversations.info": self._conversations_info,
        }

    def call(self, method: str, params: JSON, token: str | None) -> Reply:
        """Authenticate the caller, then run the method.

        Slack sends a bot token's scopes with every answer to it (`x-oauth-scopes`), and
        refuses a method whose scope the token lacks with `missing_scope`, naming it.
        """
        caller = self._tokens.get(token or "")
        if caller is None:
            return failed("invalid_auth" if token else "not_authed")
        try:
            reply = self._run(method, params, caller)
        except SlackError as error:
            reply = failed(error.code)
        except MissingScopeError as missing:
            provided = ",".join(sorted(self.scopes))
            body = {"ok": False, "error": "missing_scope", "needed": missing.needed}
            reply = Reply(200, body | {"provided": provided})
        if caller != "bot":
            return reply
        scopes = ("x-oauth-scopes", ",".join(sorted(self.scopes)))
        return dataclasses.replace(reply, headers=(*reply.headers, scopes))

    def _require(self, scope: str) -> None:
        if scope not in self.scopes:
            raise MissingScopeError(scope)

    def _run(self, method: str, params: JSON, caller: Caller) -> Reply:
        if method == "apps.connections.open":
            return self._connections_open(caller)
        handler = self._methods.get(method)
        if handler is None:
            raise SlackError("unknown_method")
        if caller != "bot":
            raise SlackError("not_allowed_token_type")
        if method in METHOD_SCOPES:
            self._require(METHOD_SCOPES[method])
        return handler(params)

    @property
    def _bot(self) -> str:
        return self.workspace.identity.bot_user_id

    def _message_reply(self, message: Message, **extra: object) -> Reply:
        team = self.workspace.identity.team_id
        return ok(channel=message.channel, ts=message.ts, message=message.to_api(team), **extra)

    def _auth_test(self, _params: JSON) -> Reply:
        me = self.workspace.identity
        return ok(
            url=self.base_url,
            team=me.team_name,
            user=me.bot_name,
            team_id=me.team_id,
            user_id=me.bot_user_id,
            bot_id=me.bot_id,
            is_enterprise_install=False,
        )

    def _content(self, params: JSON) -> tuple[str, tuple[JSON, ...], tuple[JSON, ...]]:
        text = text_arg(params, "text")
        blocks, attachments = list_arg(params, "blocks"), list_arg(params, "attachments")
        if not (text or blocks or attachments):
            raise SlackError("no_text")
        if len(text) > MAX_TEXT:
            raise SlackError("msg_too_long")
        if "blocks" in params and params["blocks"] not in (None, "", []):
            check_blocks(params["blocks"])
        return text, blocks, attachments

    def _channel(self, params: JSON, key: str = "channel") -> str:
        channel = text_arg(params, key)
        if not channel:
            raise SlackError("channel_not_found")
        return channel

    def _post_message(self, params: JSON) -> Reply:
        channel = self._channel(params)
        text, blocks, attachments = self._content(params)
        message = self.workspace.post(
            channel,
            self._bot,
            text=text,
            blocks=blocks,
            attachments=attachments,
            thread_ts=text_arg(params, "thread_ts") or None,
        )
        return self._message_reply(message)

    def _update(self, params: JSON) -> Reply:
        channel, ts = self._channel(params), text_arg(params, "ts")
        text, blocks, attachments = self._content(params)
        message = self.workspace.edit(
            channel,
            ts,
            text=text,
            blocks=blocks if "blocks" in params else None,
            attachments=attachments if "attachments" in params else None,
        )
        return self._message_reply(message, text=message.text)

    def _delete(self, params: JSON) -> Reply:
        channel, ts = self._channel(params), text_arg(params, "ts")
        self.workspace.delete(channel, ts)
        return ok(channel=channel, ts=ts)

    def _post_ephemeral(self, params: JSON) -> Reply:
        channel, user = self._channel(params), text_arg(params, "user")
        if not user:
            raise SlackError("user_not_in_channel")
        text, blocks, attachments = self._content(params)
        message = self.workspace.post(
            channel,
            self._bot,
            text=text,
            blocks=blocks,
            attachments=attachments,
            thread_ts=text_arg(params, "thread_ts") or None,
            visible_to=user,
            via="chat.postEphemeral",
        )
        return ok(message_ts=message.ts)

    def _permalink(self, params: JSON) -> Reply:
        message = self.workspace.message(self._channel(params), text_arg(params, "message_ts"))
        link = f"{self.base_url}archives/{message.channel}/p{message.ts.replace('.', '')}"
        if message.is_reply:
            link += f"?thread_ts={message.thread_ts}&cid={message.channel}"
        return ok(channel=message.channel, permalink=link)

    def _react(self, params: JSON) -> Reply:
        name = text_arg(params, "name")
        if not name:
            raise SlackError("invalid_name")
        self.workspace.react(self._channel(params), text_arg(params, "timestamp"), self._bot, name)
        return ok()

    def _reactions_get(self, params: JSON) -> Reply:
        """Slack's shape: the message, with `reactions` as name, users and count per emoji."""
        message = self.workspace.message(self._channel(params), text_arg(params, "timestamp"))
        users: dict[str, list[str]] = {}
        for reaction in message.reactions:
            users.setdefault(reaction.name, []).append(reaction.user)
        body = message.to_api(self.workspace.identity.team_id)
        if users:
            body["reactions"] = [
                {"name": name, "users": who, "count": len(who)} for name, who in users.items()
            ]
        return ok(type="message", channel=message.channel, message=body)

    def _conversations_info(self, params: JSON) -> Reply:
        """A public channel needs channels:read, a private one groups:read (Slack's rule)."""
        channel = self.workspace.conversation(self._channel(params))
        self._require("groups:read" if channel.private else "channels:read")
        return ok(channel=channel.to_api(self.workspace.identity.team_id))

    def _users_info(self, params: JSON) -> Reply:
        user = self.workspace.user(text_arg(params, "user"))
        return ok(user=user.to_api(self.workspace.identity.team_id))

    def _usergroup_users(self, params: JSON) -> Reply:
        return ok(users=list(self.workspace.group_members(text_arg(params, "usergroup"))))

    def _upload_url(self, params: JSON) -> Reply:
        filename, length = text_arg(params, "filename"), text_arg(params, "length")
        if not filename or not length.isdigit():
            raise SlackError("invalid_arguments")
        file_id, key = self.uploads.reserve(filename)
        return ok(upload_url=f"{self.base_url}upload/v1/{key}", file_id=file_id)

    def _complete_upload(self, params: JSON) -> Reply:
        wanted = params.get("files")
        if not isinstance(wanted, list) or not wanted:
            raise SlackError("invalid_arguments")
        pairs = [
            (str(f.get("id", "")), str(f.get("title") or "")) for f in wanted if isinstance(f, dict)
        ]
        files = self.uploads.complete(pairs, self._bot)
        channels = [c for c in text_arg(params, "channels").split(",") if c]
        if text_arg(params, "channel_id"):
            channels.insert(0, text_arg(params, "channel_id"))
        for channel in channels:
            self.workspace.post(
                channel,
                self._bot,
                text=text_arg(params, "initial_comment"),
                thread_ts=text_arg(params, "thread_ts") or None,
                files=tuple(files),
                via="files.completeUploadExternal",
            )
        return ok(files=[f.to_api() for f in files])

    def _views_open(self, params: JSON) -> Reply:
        """A modal in front of the person whose press handed out the trigger id."""
        me = self.workspace.identity
        form = self.forms.open(params)
        return ok(view=form.to_api(me.team_id, me.app_id, me.bot_id))

    def _connections_open(self, caller: Caller) -> Reply:
        if caller != "app":
            return failed("not_allowed_token_type")
        if self.socket_url is None:
            # The stand-in's own code: no Socket Mode server is attached.
            return failed("socket_mode_not_enabled")
        return ok(url=self.socket_url())

    # -- the endpoints that are not Web API methods ----------------------------------------

    def upload(self, key: str, content: bytes) -> Reply:
        """The raw POST of a file's bytes to its upload URL; Slack answers in plain text."""
        if not self.uploads.receive(key, content):
            return Reply(404, "not_found")
        return Reply(200, f"OK - {len(content)}")

    def respond(self, key: str, params: JSON, *, immediate: bool = False) -> Reply:
        """A reply through a response URL, or (`immediate`) the answer to a slash command."""
        target = self.workspace.responder(key)
        if target is None:
            return Reply(404, "no_service")
        text, blocks = text_arg(params, "text"), list_arg(params, "blocks")
        try:
            if flag(params.get("delete_original")):
                if target.last_ts is not None:
                    self.workspace.delete(target.channel, target.last_ts)
                return Reply(200, "ok")
            if not (text or blocks):
                return Reply(400, "no_text")
            if flag(params.get("replace_original")) and target.last_ts is not None:
                self.workspace.edit(target.channel, target.last_ts, text=text, blocks=blocks)
                return Reply(200, "ok")
        except SlackError as error:
            return Reply(404, error.code)
        in_channel = text_arg(params, "response_type") == "in_channel"
        message = self.workspace.post(
            target.channel,
            self._bot,
            text=text,
            blocks=blocks,
            thread_ts=text_arg(params, "thread_ts") or None,
            visible_to=None if in_channel else target.user,
            via="response_url",
            after=target.command_seq if immediate else None,
        )
        self.workspace.remember_reply(key, message.ts)
        return Reply(200, "ok")
