"""The Web API client every call to Slack goes through, cleaned of rollbot's secrets.

Messages are cleaned when they are stored, but Slack is reached from more places than the
outbox (Bolt's `say`, the directory's look-ups, whatever is added next): cleaning each request
here, as it leaves, means none of them has to remember to. The token travels in a header,
which is left alone; bodies and query strings are cleaned.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slack_sdk import WebClient

if TYPE_CHECKING:
    from slack_sdk.web.slack_response import SlackResponse

    from bot.core.redact import Redactor


class RedactingWebClient(WebClient):
    """A WebClient whose request bodies never carry a known secret."""

    def __init__(self, redactor: Redactor, **options: Any) -> None:  # noqa: ANN401 - WebClient's
        super().__init__(**options)
        self._redactor = redactor

    def api_call(
        self,
        api_method: str,
        *,
        http_verb: str = "POST",
        files: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
        headers: dict[str, Any] | None = None,
        auth: dict[str, Any] | None = None,
    ) -> SlackResponse:
        """Every Web API method ends here: clean what it sends, then send it."""
        return super().api_call(
            api_method,
            http_verb=http_verb,
            files=files,
            data=self._clean(data),
            params=self._clean(params),
            json=self._clean(json),
            headers=headers,
            auth=auth,
        )

    def files_upload_v2(self, **kwargs: Any) -> SlackResponse:  # noqa: ANN401 - WebClient's
        """A snippet's bytes go to an upload URL, not through `api_call`: clean them here."""
        content = kwargs.get("content")
        if isinstance(content, str):
            kwargs["content"] = self._redactor.text(content)
        return super().files_upload_v2(**kwargs)

    def _clean(self, body: dict[str, Any] | None) -> dict[str, Any] | None:
        if body is None:
            return None
        # A `token` argument is the caller's credential, which slack_sdk moves to the header.
        return {k: v if k == "token" else self._redactor.value(v) for k, v in body.items()}
