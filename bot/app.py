"""The composition root: settings in, a running rollbot out.

Everything is built here once and passed down: the run store, the Slack client (with retries
on 429 and on connection errors), the courier, the Bolt app with its listeners, the health
endpoint. `rollbot serve`, the scenario tests and the demo all build rollbot the same way.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import TYPE_CHECKING, Any

import structlog
from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
)

import bot.slack.listeners as handlers
from bot.service.rollback import Rollbot
from bot.slack.chatops import TRIGGER_PREFIX, ChatOps
from bot.slack.client import RedactingWebClient
from bot.slack.courier import Courier
from bot.slack.directory import SlackDirectory
from bot.slack.gate import SIGNATURE_WINDOW_S, RequestGate
from bot.slack.notifier import SlackNotifier
from bot.state.deliveries import Deliveries
from bot.state.store import RunStore

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from bot.config import Settings

log = structlog.get_logger()
EVENTS_PATH = "/slack/events"
SWEEP_INTERVAL_S = 5.0
HEALTH_PATH = "/healthz"


class Components:
    """A wired rollbot: what `serve` runs and what tests drive."""

    def __init__(self, settings: Settings, store: RunStore) -> None:
        self.settings = settings
        self.store = store
        # The secrets are registered once, here, and every channel out is handed the same
        # redactor: the store (runs, events, outbox), Slack's client and the replies to commands.
        self.redactor = settings.redactor()
        token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else ""
        self.client = RedactingWebClient(
            self.redactor,
            token=token,
            base_url=settings.slack_api_url,
            timeout=15,
            retry_handlers=[
                RateLimitErrorRetryHandler(max_retry_count=3),
                ConnectionErrorRetryHandler(max_retry_count=2),
            ],
        )
        self.deliveries = Deliveries(store)
        self.courier = Courier(self.deliveries, self.client)
        self.notifier = SlackNotifier(
            reaction=settings.approval_reaction,
            approvers=lambda name: settings.approvers_for(settings.target(name)),
            incident_channel=settings.incident_channel,
            wake=self.courier.wake,
        )
        self.directory = SlackDirectory(self.client)
        self.service = Rollbot(
            settings, store, notifier=self.notifier, approvers=self.directory.approvers
        )
        self.chatops = ChatOps(
            self.service, self.deliveries, self.directory, settings, redactor=self.redactor
        )
        secret = settings.slack_signing_secret
        self.bolt = App(
            client=self.client,
            signing_secret=secret.get_secret_value() if secret else "",
            request_verification_enabled=settings.slack_app_token is None,
            process_before_response=False,
            logger=logging.getLogger("slack_bolt"),
        )
        handlers.register(self.bolt, self.chatops)
        self._sweeper = threading.Thread(target=self._sweep, name="rollbot-sweeper", daemon=True)
        self._stopping = threading.Event()

    def start(self) -> None:
        """Settle what a crash left behind, then deliver the outbox and expire runs."""
        self.service.reconcile()
        self.service.expire_due()
        self.courier.start()
        self._sweeper.start()
        # Approvals Slack holds but rollbot never acted on; may execute, so not on this thread.
        threading.Thread(target=self._reread, name="rollbot-reread", daemon=True).start()

    def stop(self) -> None:
        """Stop background work and release connections."""
        self._stopping.set()
        self.courier.stop()
        if self._sweeper.is_alive():
            self._sweeper.join(timeout=5)
        self.store.close()

    def _reread(self) -> None:
        try:
            seen = self.chatops.reread_approvals()
        except Exception:
            log.exception("reread.failed")
        else:
            log.info("reread.done", reactions=seen)

    def _sweep(self) -> None:
        """Every few seconds: settle runs whose process died, close expired approval windows.

        Settling runs here, not only at start-up, is what lets a surviving replica (or a
        process restarted within the grace period) finish the truth about a run another
        process left mid-way: within ROLLBOT_ORPHAN_GRACE plus one sweep.
        """
        while not self._stopping.wait(SWEEP_INTERVAL_S):
            try:
                self.service.reconcile()
                self.service.expire_due()
                # A replayed command is caught by its trigger id only inside the signature
                # window; older ones fail the timestamp check, so their ids need not be kept.
                self.deliveries.forget_seen(TRIGGER_PREFIX, older_than_s=2 * SIGNATURE_WINDOW_S)
            except Exception:
                log.exception("sweeper.failed")

    def wsgi(self) -> Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]:
        """Slack's Request URL at /slack/events and the health check at /healthz."""
        secret = self.settings.slack_signing_secret
        slack = RequestGate(
            SlackRequestHandler(self.bolt, path=EVENTS_PATH),
            secret.get_secret_value() if secret else "",
            path=EVENTS_PATH,
        )

        def application(
            environ: dict[str, Any], start_response: Callable[..., Any]
        ) -> Iterable[bytes]:
            if environ.get("PATH_INFO") == HEALTH_PATH:
                return self._health(start_response)
            return slack(environ, start_response)

        return application

    def _health(self, start_response: Callable[..., Any]) -> Iterable[bytes]:
        try:
            with self.store.connection() as conn:
                conn.execute("SELECT 1")
            status, body = "200 OK", {"ok": True, "state_db": "ok"}
        except Exception:  # noqa: BLE001 - any failure means not healthy
            status, body = "503 Service Unavailable", {"ok": False, "state_db": "unreachable"}
        payload = json.dumps(body).encode()
        start_response(
            status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
        )
        return [payload]


def build(settings: Settings, *, store: RunStore | None = None) -> Components:
    """Wire rollbot from settings; the store is opened and migrated if not given."""
    if store is None:
        conninfo, variable = settings.state_conninfo()
        store = RunStore(
            conninfo,
            variable=variable,
            timeout=settings.connect_timeout.total_seconds(),
            redactor=settings.redactor(),
        )
    store.migrate()
    return Components(settings, store)
