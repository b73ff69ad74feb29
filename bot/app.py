"""The composition root: settings in, a running rollbot out.

Everything is built here once and passed down: the run store, the Slack client (with retries
on 429 and on connection errors), the courier, the Bolt app with its listeners, the health
endpoint. `rollbot serve`, the scenario tests and the demo all build rollbot the same way.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

import structlog
from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
)

import bot.slack.listeners as handlers
from bot.service.doctor import Doctor, log_report
from bot.service.rollback import Rollbot
from bot.slack.chatops import TRIGGER_PREFIX, ChatOps
from bot.slack.client import RedactingWebClient
from bot.slack.courier import Courier, GivenUp
from bot.slack.directory import SlackDirectory
from bot.slack.doctor import slack_checks
from bot.slack.gate import SIGNATURE_WINDOW_S, RequestGate
from bot.slack.notifier import SlackNotifier
from bot.slack.undelivered import Responders, Undelivered
from bot.slack.workers import Workers
from bot.state.deliveries import Deliveries
from bot.state.store import RunStore

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from bot.config import Settings
    from bot.core.doctor import Report

log = structlog.get_logger()
EVENTS_PATH = "/slack/events"
SWEEP_INTERVAL_S = 5.0
HEALTH_PATH = "/healthz"
COURIER_STALE_S = 60.0  # a due message undelivered this long: the courier is not working
SWEEPER_STALE_S = 6 * SWEEP_INTERVAL_S  # the sweeper thread has stopped or hangs


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
        self.courier = Courier(
            self.deliveries,
            self.client,
            deadline_s=settings.delivery_deadline.total_seconds(),
            on_given_up=self._given_up,
        )
        self.notifier = SlackNotifier(
            reaction=settings.approval_reaction,
            approvers=lambda name: settings.approvers_for(settings.target(name)),
            incident_channel=settings.incident_channel,
            wake=self.courier.wake,
        )
        self.directory = SlackDirectory(self.client)
        self.workers = Workers(threads=settings.workers, queue_size=settings.queue_size)
        self.approvals = Workers(threads=settings.workers, queue_size=settings.queue_size)
        self.service = Rollbot(
            settings,
            store,
            notifier=self.notifier,
            approvers=self.directory.approvers,
            defer=self._final_backup_later,
        )
        self.responders = Responders()
        self.chatops = ChatOps(
            self.service,
            self.deliveries,
            self.directory,
            settings,
            workers=self.workers,
            approvals=self.approvals,
            responders=self.responders,
            redactor=self.redactor,
            doctor=self.examine,
        )
        self.undelivered = Undelivered(
            self.service,
            self.deliveries,
            self.client,
            self.responders,
            incident_channel=settings.incident_channel,
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
        self.doctor = Doctor.of(settings)
        self.setup_report: Report | None = None  # the doctor's report at start-up, once made
        self._sweeper = threading.Thread(target=self._sweep, name="rollbot-sweeper", daemon=True)
        self._stopping = threading.Event()
        self._last_sweep = time.monotonic()
        # Set by `serve` in Socket Mode: whether the websocket to Slack is up.
        self.socket_connected: Callable[[], bool] | None = None

    def _final_backup_later(self, job: Callable[[], None]) -> None:
        """A committed run's final backup, on a worker: the thread already has the outcome.

        A full queue (or a stop before it runs) leaves the backup to the next sweep.
        """
        if self.approvals.submit("final backup", job) is None:
            log.info("final_backup.left_to_sweep")

    def start(self) -> None:
        """Settle what a crash left behind, then deliver the outbox and expire runs."""
        self.service.reconcile()
        self.service.expire_due()
        self.workers.start()
        self.approvals.start()
        self.courier.start()
        self._sweeper.start()
        # Approvals Slack holds but rollbot never acted on; may execute, so not on this thread.
        threading.Thread(target=self._reread, name="rollbot-reread", daemon=True).start()

    def examine(self) -> Report:
        """`rollbot doctor`'s report: the databases, files and this rollbot's Slack token."""
        return self.doctor.examine(more=lambda: slack_checks(self.client, self.settings))

    def check_setup(self) -> threading.Thread:
        """Run the doctor in the background at start-up: logged, then shown by /healthz.

        rollbot starts whatever it finds: a missing privilege on one target must not stop
        approvals on another. Each error is logged loudly (one `doctor.check` line at level
        error) and /healthz shows `"doctor": "N error(s) at start-up"`, but still answers 200:
        a setup error is not fixed by a restart, and an orchestrator that restarts or
        unroutes an unhealthy rollbot would take the working targets down with it.
        """

        def run() -> None:
            try:
                report = self.examine()
            except Exception:
                log.exception("doctor.failed")
                return
            log_report(report)
            self.setup_report = report

        thread = threading.Thread(target=run, name="rollbot-doctor", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        """Stop background work and release connections."""
        self._stopping.set()
        self.workers.stop()
        self.approvals.stop()
        self.courier.stop()
        if self._sweeper.is_alive():
            self._sweeper.join(timeout=5)
        self.store.close()

    def _given_up(self, given_up: GivenUp) -> None:
        self.undelivered(given_up)

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
        promptly restarted process) tell the truth about a run another process left mid-way:
        within one sweep (5 s) of its death.
        """
        while not self._stopping.wait(SWEEP_INTERVAL_S):
            try:
                self._last_sweep = time.monotonic()
                self.service.reconcile()
                self.service.expire_due()
                self.service.remind_due()
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

    def health(self) -> dict[str, Any]:
        """Whether this rollbot can hear Slack and act on it, part by part.

        Each part is "ok" or says what is wrong; `ok` is false when any part is not. A
        rollbot whose websocket is down, or whose courier has stopped delivering, answers
        nobody: it must not look healthy.
        """
        body: dict[str, Any] = {}
        try:
            with self.store.connection() as conn:
                conn.execute("SELECT 1")
            body["state_db"] = "ok"
            age = self.deliveries.backlog_age_s()
            body["courier"] = (
                "ok" if age < COURIER_STALE_S else f"a message has waited {age:.0f} s for delivery"
            )
        except Exception:  # noqa: BLE001 - any failure means not healthy
            body["state_db"] = "unreachable"
        if self.socket_connected is not None:
            body["socket_mode"] = "ok" if self.socket_connected() else "disconnected"
        quiet = time.monotonic() - self._last_sweep
        body["sweeper"] = "ok" if quiet < SWEEPER_STALE_S else f"no sweep for {quiet:.0f} s"
        body["ok"] = all(v == "ok" for v in body.values())
        report = self.setup_report
        if report is not None:  # said, but not counted in `ok`: see `check_setup`
            errors = report.count("error")
            body["doctor"] = (
                "ok" if report.healthy else f"{errors} error(s) at start-up: run rollbot doctor"
            )
        return body

    def health_wsgi(self) -> Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]:
        """Only /healthz (Socket Mode: events come over the websocket, unsigned by HTTP)."""

        def application(
            environ: dict[str, Any], start_response: Callable[..., Any]
        ) -> Iterable[bytes]:
            if environ.get("PATH_INFO") == HEALTH_PATH:
                return self._health(start_response)
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"Socket Mode: Slack events arrive over the websocket, not here\n"]

        return application

    def _health(self, start_response: Callable[..., Any]) -> Iterable[bytes]:
        body = self.health()
        status = "200 OK" if body["ok"] else "503 Service Unavailable"
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
