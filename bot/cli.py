"""`rollbot`: the command line, for scripts and for break-glass use.

Every command can print JSON (`--json`) for scripts. Errors are rendered, never tracebacks:
exit 1 when a run ends blocked or failed, 2 when the request or the setup is wrong (a setting, a
connection detail, a missing privilege) or rollbot failed unexpectedly (with a log reference).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO, cast

from bot import __version__
from bot.core.errors import ConfigError, NotFoundError, RollbotError, quoted
from bot.core.states import RunState

# Everything else is imported where a command needs it: `--version`, `--help` and the
# file-only commands start without the database driver, Slack's SDK, rich or pydantic.
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from rich.console import Console
    from rich.progress import Progress, TaskID

    from bot.config import Settings
    from bot.core.doctor import Check
    from bot.core.outbox import Message
    from bot.core.progress import Progress as BackupProgress
    from bot.core.redact import Redactor
    from bot.core.retention import Keep
    from bot.core.run import Run
    from bot.service.lifecycle import Notifier
    from bot.service.rollback import Rollbot

_FAILED = {RunState.FAILED, RunState.BLOCKED, RunState.CANCELLED, RunState.EXPIRED}
# They look and never change anything: they neither create rollbot's schema nor settle runs
# where it does not exist yet (a database rollbot never wrote to has no runs to show).
_READ_ONLY = frozenset({"history", "runs", "show", "log", "sql"})
# They read files only: no database, no client tools, nothing logged on the way.
_FILES_ONLY = frozenset({"runbooks", "lint", "derive"})


class TerminalNotifier:
    """Progress on stderr, so stdout stays the result (and stays valid JSON).

    With Slack configured, every move is also stored with the Slack messages that announce
    it, exactly as `rollbot serve` would write them: a run requested in Slack and approved
    here is still approved, executed and reported in its thread and the incident channel,
    delivered by the courier of any running `rollbot serve`.
    """

    def __init__(self, stream: TextIO, slack: Notifier | None = None, *, bar: bool = False) -> None:
        self.stream = stream
        self.slack = slack
        # A progress bar only on a terminal: a script reading stderr gets the lines alone.
        self._console: Console | None = None
        if bar:
            from rich.console import Console

            from bot.logs import MaskedStream

            # rich draws the bar with escape sequences: its stream keeps them (masked still).
            drawn = (
                cast("TextIO", MaskedStream(stream.stream, stream.redactor, inert=False))
                if isinstance(stream, MaskedStream)
                else stream
            )
            self._console = Console(file=drawn)
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    def messages(self, run: Run, event: str) -> list[Message]:
        """Slack's messages for the move, when rollbot has a Slack app; else none."""
        return self.slack.messages(run, event) if self.slack else []

    def notice(self, run: Run, user: str, reason: str) -> list[Message]:
        """Slack's note for a refusal, when rollbot has a Slack app; else none."""
        return self.slack.notice(run, user, reason) if self.slack else []

    def run_changed(self, run: Run, event: str) -> None:
        """One line per step, as it is stored."""
        from bot.service.lifecycle import PROGRESS

        if event == PROGRESS:
            return
        self._end_bar()
        print(f"run {run.id}: {event.replace('_', ' ')}", file=self.stream, flush=True)

    def progress_messages(self, run: Run, progress: BackupProgress) -> list[Message]:
        """Slack's plan message with the bytes written, when rollbot has a Slack app."""
        return self.slack.progress_messages(run, progress) if self.slack else []

    def run_progress(self, run: Run, progress: BackupProgress) -> None:
        """Bytes written against the catalog's size of the dumped tables, on a terminal."""
        if self._console is None or not self._console.is_terminal:
            return
        if self._bar is None:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TransferSpeedColumn,
            )

            self._bar = Progress(
                TextColumn(f"run {run.id}: backup"),
                BarColumn(),
                DownloadColumn(),
                TextColumn("written, of at most the tables' size;"),
                TransferSpeedColumn(),
                console=self._console,
            )
            self._task = self._bar.add_task("backup", total=progress.expected or None)
            self._bar.start()
        assert self._task is not None  # noqa: S101 - set with the bar
        self._bar.update(self._task, completed=progress.written)

    def _end_bar(self) -> None:
        """The backup has ended: the bar shows what was written, full, and stays above."""
        if self._bar is not None and self._task is not None:
            written = self._bar.tasks[0].completed
            self._bar.update(self._task, total=written, completed=written)
            self._bar.stop()
        self._bar = None


def _slack_notifier(settings: Settings) -> Notifier | None:
    """The messages `serve` would store, for a CLI that shares its state database."""
    if settings.slack_bot_token is None:
        return None
    from bot.slack.notifier import SlackNotifier

    return SlackNotifier(
        reaction=settings.approval_reaction,
        approvers=lambda name: settings.approvers_for(settings.target(name)),
        incident_channel=settings.incident_channel,
    )


def _slack_approvers(
    settings: Settings, redactor: Redactor
) -> Callable[[tuple[str, ...]], frozenset[str]] | None:
    """User groups among the approvers expanded by asking Slack, as `serve` does.

    Without a bot token the command line cannot know who is in a group: the refusal then says
    that SLACK_BOT_TOKEN is what is missing.
    """
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else ""
    if not token:
        return None
    from bot.slack.client import RedactingWebClient
    from bot.slack.directory import SlackDirectory

    client = RedactingWebClient(redactor, token=token, base_url=settings.slack_api_url, timeout=15)
    return SlackDirectory(client).approvers


def _user_id(text: str) -> str:
    """An identity flag's value: a Slack member ID, recorded as who asked or approved."""
    from bot.core.policy import user_id_problem

    problem = user_id_problem(text)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return text


def build_parser() -> argparse.ArgumentParser:
    """The command line, one subcommand per task."""
    parser = argparse.ArgumentParser(
        prog="rollbot",
        description="Roll back PostgreSQL schema migrations: planned, backed up, approved, "
        "run in one transaction and verified.",
    )
    parser.add_argument("--version", action="version", version=f"rollbot {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=text, description=text)
        sub.add_argument("--json", action="store_true", help="print JSON for scripts")
        return sub

    command("runbooks", "list the runbooks (broken ones with their reason)")
    plan = command("plan", "plan a rollback, take and verify the backup, await approval")
    plan.add_argument("migration", help="0023, 23 or 0023_loud_shen")
    plan.add_argument("--requested-by", required=True, type=_user_id, metavar="USER_ID")
    plan.add_argument("--target", metavar="NAME", help="a name from ROLLBOT_TARGETS")
    plan.add_argument(
        "--after", type=int, metavar="RUN", help="promote: a run that succeeded on another target"
    )
    sql = command("sql", "preview a rollback: its exact SQL and preflight; runs nothing")
    sql.add_argument("migration", help="0023, 23 or 0023_loud_shen")
    sql.add_argument("--target", metavar="NAME", help="a name from ROLLBOT_TARGETS")
    approve = command("approve", "approve a run (as an approver) and execute it")
    approve.add_argument("run", type=int)
    approve.add_argument("--as", dest="user", required=True, type=_user_id, metavar="USER_ID")
    restore = command("restore", "plan putting back what a rollback run dropped")
    restore.add_argument("run", type=int)
    restore.add_argument("--requested-by", required=True, type=_user_id, metavar="USER_ID")
    purge = command("purge", "plan dropping a quarantined rollback's tables for good")
    purge.add_argument("run", type=int)
    purge.add_argument("--requested-by", required=True, type=_user_id, metavar="USER_ID")
    cancel = command("cancel", "cancel a run that has not started executing")
    cancel.add_argument("run", type=int)
    cancel.add_argument("--as", dest="user", required=True, type=_user_id, metavar="USER_ID")
    runs = command("runs", "list recent runs: kind, state, target, requester, approvers")
    runs.add_argument("--target", metavar="NAME", help="only this target's runs")
    runs.add_argument(
        "--state",
        action="append",
        type=RunState,
        choices=list(RunState),
        metavar="STATE",
        help="only runs in this state (repeatable): " + ", ".join(s.value for s in RunState),
    )
    runs.add_argument("--since", type=_date, metavar="DATE", help="created on or after (UTC)")
    runs.add_argument("--limit", type=int, default=50, metavar="N", help="at most N runs (50)")
    history = command("history", "migration history, live from the Drizzle journal")
    history.add_argument("--target", metavar="NAME")
    lint = command("lint", "compare a runbook with the migration it undoes")
    lint.add_argument("migration")
    derive = command("derive", "print the rollback rollbot derives from a forward migration")
    derive.add_argument("migration")
    log_ = command("log", "a run's audit trail: who did what, when, from which process")
    log_.add_argument("run", type=int)
    backups = command("backups", "list the backup files of every run; `prune` applies retention")
    backups.add_argument(
        "action", nargs="?", choices=["prune"], help="delete the files beyond ROLLBOT_BACKUP_KEEP"
    )
    backups.add_argument(
        "--keep", type=_keep, metavar="N|AGE", help="retention for this prune: 20 runs, or 14d"
    )
    backups.add_argument("--as", dest="user", default="rollbot", metavar="NAME")
    show = command("show", "show one run: plan, backup, approvals and outcome")
    show.add_argument("run", type=int)
    command("doctor", "check targets, privileges, tools, runbooks, backups, Slack; change nothing")
    commands.add_parser(
        "serve", help="run the Slack bot (Socket Mode with SLACK_APP_TOKEN, else HTTP on $PORT)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `rollbot` console script: Ctrl-C at any moment is one line, 130.

    The interrupt is caught here, around everything (argument parsing imports modules that
    take a while on a loaded machine), and a second one while the first unwinds is ignored
    once the line is being printed, so no moment of the command ends in a traceback.
    """
    _catch_signals()
    try:
        return _main(argv)
    except KeyboardInterrupt as interrupt:
        _ignore_signals()  # the line below, and the interpreter's exit, run to the end
        told = interrupt.told if isinstance(interrupt, Interrupted) else INTERRUPTED_UNSETTLED
        return _told(told, interrupt)


def _told(line: str, interrupt: KeyboardInterrupt) -> int:
    print(line, file=sys.stderr)
    return 128 + int(getattr(interrupt, "signum", signal.SIGINT))


class Terminated(KeyboardInterrupt):
    """SIGTERM (`kill`, `timeout`, a supervisor): unwound like Ctrl-C, exit status 143."""

    signum = signal.SIGTERM


class Interrupted(KeyboardInterrupt):
    """An interrupt whose run was settled on the way out: `told` is the line saying how."""

    def __init__(self, told: str, signum: int) -> None:
        super().__init__(told)
        self.told = told
        self.signum = signum


def _on_sigterm(signum: int, frame: object) -> None:  # noqa: ARG001 - signal handler signature
    raise Terminated


def _catch_signals() -> None:
    """Ctrl-C and SIGTERM raise, whatever the disposition rollbot was started with.

    A shell without job control starts a background command (`rollbot approve 7 &`, a CI
    step, a test runner started so) with SIGINT ignored, and Python then installs no handler
    of its own: Ctrl-C, or `kill -INT`, did nothing, and an execution waiting on a lock went
    on for its whole lock timeout and every retry. SIGTERM would end the process at once,
    with no line, its run left for the next command to settle.
    """
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _on_sigterm)


# How long a second Ctrl-C waits for the settle after the first: a few queries, done in well
# under a second unless a database stopped answering.
_SETTLE_GRACE_S = 3.0


@contextmanager
def _held_off(grace_s: float) -> Iterator[None]:
    """A Ctrl-C (or SIGTERM) in the first `grace_s` seconds is ignored; a later one raises.

    Whoever presses Ctrl-C twice in a row would otherwise cut short the settle the first one
    started, leaving the run "executing" until the next command; one who keeps pressing after
    the grace is asking to leave at once, and does.
    """
    started = time.monotonic()

    def later_ones_raise(signum: int, frame: object) -> None:  # noqa: ARG001 - handler signature
        if time.monotonic() - started > grace_s:
            raise KeyboardInterrupt

    previous = [(s, signal.signal(s, later_ones_raise)) for s in (signal.SIGINT, signal.SIGTERM)]
    try:
        yield
    finally:
        for signum, handler in previous:
            signal.signal(signum, handler)


def _ignore_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    from bot.core.redact import Redactor

    _mask_output(Redactor())  # until the settings name the known secrets: shapes only
    try:
        from bot.config import load_settings

        settings = load_settings()
        if args.command == "serve":
            from bot.serve import serve

            return serve(settings)
        redactor = settings.redactor()
        _mask_output(redactor)
        if args.command not in _FILES_ONLY:
            _configure_logging(settings, redactor)
        return _dispatch(args, settings)
    except RollbotError as exc:
        print(f"rollbot: {exc.render()}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # `rollbot runs | head`: the reader has what it wanted. Point stdout at nothing so
        # the interpreter's own last flush does not fail again on the closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # noqa: BLE001 - logged with its traceback below
        # The adapters translate every failure whose cause they know; this is the last line:
        # one sentence for the person, the traceback in the (masked) log under a reference.
        import uuid

        import structlog

        if not _LOGGING:
            _configure_logging(None, None)
        reference = uuid.uuid4().hex[:8]
        structlog.get_logger().error("cli.unexpected_error", reference=reference, exc_info=exc)
        print(f"rollbot: {_unexpected(exc, reference)}", file=sys.stderr)
        return 2


_LOGGING: list[bool] = []  # configured yet? (a file-only command configures it only to fail)


def _configure_logging(settings: Settings | None, redactor: Redactor | None) -> None:
    """Logging set up with the secrets masked; CLI commands log warnings unless told more."""
    from bot.logs import configure_logging

    quiet = settings is None or "ROLLBOT_LOG_LEVEL" not in os.environ
    level = "warning" if quiet or settings is None else settings.log_level
    configure_logging(secrets=redactor or (), level=level)
    _LOGGING.append(True)


def _unexpected(exc: Exception, reference: str) -> str:
    said = (str(exc).strip().splitlines() or [""])[0]
    return RollbotError(
        f"Unexpected error (reference {reference}): {type(exc).__name__}",
        why=said,
        todo="the log has the details under that reference; `rollbot runs` shows where any "
        "run stands",
    ).render()


def _mask_output(redactor: Redactor) -> None:
    """Everything the command prints, on stdout or stderr, goes through the redactor."""
    from bot.logs import MaskedStream

    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        setattr(
            sys,
            name,
            MaskedStream(stream.stream, redactor)
            if isinstance(stream, MaskedStream)
            else MaskedStream(stream, redactor),
        )


INTERRUPTED = (
    "rollbot: interrupted; any open transaction was rolled back and a run left mid-way was "
    "settled; `rollbot show RUN` tells how it ended."
)
# Interrupted before the run was settled (again during the settle, or before a database was
# reached): psycopg cancelled the query and the closed connection rolled back; the next
# command settles what is left.
INTERRUPTED_UNSETTLED = (
    "rollbot: interrupted; any open transaction was rolled back, and the next rollbot command "
    "settles a run left mid-way; `rollbot show RUN` tells how it ended."
)


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    if args.command in _FILES_ONLY - {"runbooks"}:
        return _migration_tool(args, settings)
    if args.command == "runbooks":
        from bot.core.library import load_library
        from bot.core.plan import blocked_runbooks
        from bot.core.text import runbooks_text

        library = load_library(settings.runbooks_dir)
        blocked = blocked_runbooks(library)
        if args.json:
            listed = library.model_dump(
                mode="json", exclude={"runbooks": {"__all__": {"statements"}}}
            )
            _json(listed | {"blocked": blocked})
        else:
            print(runbooks_text(library))
        # A script checking runbooks in CI must see both kinds.
        return 1 if library.broken or blocked else 0
    if args.command == "doctor":
        return _doctor(args, settings)  # before the store: doctor creates no schema
    from bot.service.rollback import Rollbot
    from bot.state.store import RunStore

    conninfo, variable = settings.state_conninfo()
    redactor = settings.redactor()
    store = RunStore(
        conninfo,
        variable=variable,
        timeout=settings.connect_timeout.total_seconds(),
        redactor=redactor,
    )
    try:
        # A look at a database rollbot never wrote to must leave it so: no schema is made.
        kept = store.attach() if args.command in _READ_ONLY else store.migrate() > 0
        bar = args.command == "plan" and not args.json
        notifier = TerminalNotifier(sys.stderr, _slack_notifier(settings), bar=bar)
        service = Rollbot(
            settings, store, notifier=notifier, approvers=_slack_approvers(settings, redactor)
        )
        if kept:
            _settle(service)
        try:
            return _run_command(args, service)
        except KeyboardInterrupt as interrupt:
            # The locks of a run this process was on are released by now: settle it at once,
            # so the migration is not left blocked until some other process looks. A pending
            # final backup is not started over: the person asked the command to end.
            with _held_off(_SETTLE_GRACE_S):
                _settle(service, final_backups=False)
                told = _interrupted(service, getattr(args, "run", None))
            raise Interrupted(told, getattr(interrupt, "signum", signal.SIGINT)) from None
    finally:
        store.close()


def _doctor(args: argparse.Namespace, settings: Settings) -> int:
    """One line per check; exit 1 on any error (warnings alone exit 0)."""
    from bot.core.text import doctor_text
    from bot.service.doctor import Doctor

    more = None
    if settings.slack_bot_token is not None:
        from bot.slack.doctor import token_checks

        def more() -> list[Check]:
            return token_checks(settings)

    report = Doctor.of(settings).examine(more=more)
    if args.json:
        _json(report.model_dump(mode="json") | {"ok": report.healthy, "summary": report.summary()})
    else:
        print(doctor_text(report))
    return report.exit_status()


def _interrupted(service: Rollbot, run_id: int | None) -> str:
    """The line after Ctrl-C, saying how the command's run ended now that it is settled."""
    if run_id is None:
        return INTERRUPTED
    try:
        run = service.store.get(run_id)
    except RollbotError:
        return INTERRUPTED
    if run.state is RunState.SUCCEEDED:
        pending = run.outcome is not None and run.outcome.final_backup_pending()
        return (
            f"rollbot: interrupted after run {run.id} committed: it is recorded succeeded"
            + ("; its final backup is pending and the next command takes it" if pending else "")
            + f"; `rollbot show {run.id}` has its outcome."
        )
    if run.state in _FAILED:
        why = f": {run.reason}" if run.reason else ""
        return (
            f"rollbot: interrupted; run {run.id} ended {run.state.value}{why}; "
            f"`rollbot show {run.id}` tells more."
        )
    return (
        f"rollbot: interrupted; run {run.id} is {run.state.value.replace('_', ' ')}; "
        f"`rollbot show {run.id}` tells how it ends."
    )


def _settle(service: Rollbot, *, final_backups: bool = True) -> None:
    """Before acting (and after Ctrl-C): settle what dead processes left, expire old plans.

    This needs no `rollbot serve`: the truth about a run never waits for a server. A failure
    here is logged and does not stop the command; the sweepers of `serve` look again.
    """
    try:
        service.settle(final_backups=final_backups)
    except RollbotError as exc:
        import structlog

        structlog.get_logger().warning("settle.failed", error=exc.render())


def _run_command(args: argparse.Namespace, service: Rollbot) -> int:
    from bot.core.text import outcome_text, plan_text, runs_text, undelivered_text
    from bot.service.rollback import StalePlanError
    from bot.state.deliveries import Deliveries

    if args.command == "runs":
        return _runs(args, service, runs_text)
    if args.command in {"log", "history", "sql"}:
        return _report(args, service)
    if args.command == "backups":
        return _backups(args, service)
    try:
        run = _act(args, service)
    except StalePlanError as exc:
        print(f"rollbot: {exc.render()}", file=sys.stderr)
        return 1
    undelivered = Deliveries(service.store).undelivered(run.id) if args.command == "show" else []
    if args.json:
        extra = {"undelivered": [u.model_dump() for u in undelivered]} if undelivered else {}
        _json(_public(run) | extra)
    else:
        print(plan_text(run, with_sql=args.command != "approve"))
        if run.outcome or run.state in _FAILED:
            print()
            print(outcome_text(run))
        if undelivered:
            print()
            print(undelivered_text(undelivered))
    if args.command == "approve":
        _final_backup(service, run)
    if args.command == "cancel" and run.state is RunState.CANCELLED:
        return 0  # what was asked for happened
    return 1 if run.state in _FAILED else 0


def _final_backup(service: Rollbot, run: Run) -> None:
    """After the outcome is printed: a quarantined run's final backup, said on stderr.

    The rollback has committed and its outcome is stored; the dump reads only the quarantine
    and locks nothing the application uses. Interrupted (Ctrl-C), it stays pending and the
    next command's settle (or `serve`'s sweep) takes it.
    """
    from bot.core.texts import final_backup_taken

    outcome = run.outcome
    if outcome is None or outcome.quarantine is None or not outcome.final_backup_pending():
        return
    sys.stdout.flush()  # the outcome is out before the dump starts
    print(
        f"rollbot: committed; taking the final backup of {outcome.quarantine.schema_name} "
        "(reads the quarantine only, locks nothing the application uses; Ctrl-C leaves it "
        "to the next command)...",
        file=sys.stderr,
    )
    done = service.final_backup(run.id)
    if done.outcome is not None and not done.outcome.final_backup_pending():
        print(f"rollbot: {final_backup_taken(done)}", file=sys.stderr)
    else:
        print(
            "rollbot: the final backup is still pending (see the log); the next command "
            "or `rollbot serve` takes it",
            file=sys.stderr,
        )


def _runs(args: argparse.Namespace, service: Rollbot, runs_text: Callable[..., str]) -> int:
    """`rollbot runs`: the recent runs, with the disk each quarantine still holds."""
    runs = service.store.recent(
        limit=args.limit, states=args.state, target=args.target, since=args.since
    )
    if args.json:
        return _json([_public(r) for r in runs])
    held = service.quarantines_held(runs)
    return _print(runs_text(runs, held=held, keep=service.settings.quarantine_keep))


def _report(args: argparse.Namespace, service: Rollbot) -> int:
    """The read-only reports: a preview, a run's audit trail, a target's migration history."""
    from bot.core.text import log_text, preview_text
    from bot.drizzle.history import history_text

    if args.command == "sql":
        plan = service.preview(args.migration, target=args.target)
        if args.json:
            _json(plan.model_dump(mode="json"))
        else:
            print(preview_text(plan))
        return 1 if plan.blocked else 0
    if args.command == "log":
        events = service.store.audit(args.run)
        if args.json:
            return _json([e.model_dump(mode="json") for e in events])
        return _print(log_text(service.run(args.run), events))
    entries = service.history(args.target)
    if args.json:
        return _json([e.model_dump(mode="json") for e in entries])
    return _print(history_text(entries))


def _backups(args: argparse.Namespace, service: Rollbot) -> int:
    """`rollbot backups [prune]`: the files, or retention applied to them."""
    from bot.core.text import backups_text, prune_text
    from bot.service.backups import Backups

    backups = Backups(service.store, service.runs.now)
    if args.action is None:
        listed = backups.list()
        if args.json:
            return _json([item.model_dump(mode="json") for item in listed])
        return _print(backups_text(listed))
    keep = args.keep or service.settings.backup_keep
    if keep is None:
        raise ConfigError(
            "ROLLBOT_BACKUP_KEEP",
            "is not set (or is all), so every backup is kept and there is nothing to prune",
            todo="set it to a number of rollbacks per target (20) or an age (14d), or pass --keep",
        )
    pruned = backups.prune(keep, actor=args.user)
    if args.json:
        _json(pruned.model_dump(mode="json") | {"freed_bytes": pruned.freed_bytes})
    else:
        print(prune_text(pruned))
    return 1 if pruned.problems else 0


def _keep(text: str) -> Keep:
    """`--keep 20` or `--keep 14d`, read as ROLLBOT_BACKUP_KEEP is."""
    from bot.core.retention import parse_keep

    try:
        keep = parse_keep(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if keep is None:
        msg = "--keep all prunes nothing; leave the prune out instead"
        raise argparse.ArgumentTypeError(msg)
    return keep


def _act(args: argparse.Namespace, service: Rollbot) -> Run:
    """The commands that create or move a run (or show one)."""
    if args.command == "plan":
        return service.request(
            args.migration, requested_by=args.requested_by, target=args.target, after=args.after
        )
    if args.command == "restore":
        return service.request_restore(args.run, requested_by=args.requested_by)
    if args.command == "purge":
        return service.request_purge(args.run, requested_by=args.requested_by)
    if args.command == "cancel":
        return service.cancel(args.run, args.user)
    if args.command == "approve":
        return service.approve(args.run, args.user)
    return service.run(args.run)


def _migration_tool(args: argparse.Namespace, settings: Settings) -> int:
    """Lint and derive read files; derive replays the migrations only when an undo needs N-1."""
    from bot.core.library import load_library
    from bot.drizzle.folder import read_migrations
    from bot.drizzle.rules import find_by_query, lint
    from bot.service.planner import derive_for_cli

    if settings.migrations_dir is None:
        raise ConfigError(
            "ROLLBOT_MIGRATIONS_DIR", "is not set", todo="point it at the Drizzle migrations folder"
        )
    migrations = read_migrations(settings.migrations_dir)
    migration = find_by_query(migrations, args.migration)
    if migration is None:
        raise NotFoundError(
            f"No migration {quoted(args.migration)} in {settings.migrations_dir}",
            todo="rollbot history lists them",
        )
    if args.command == "derive":
        text = derive_for_cli(settings, migration)
        return _json({"migration": migration.tag, "runbook": text}) if args.json else _print(text)
    report = lint(load_library(settings.runbooks_dir).find(args.migration), migrations)
    assert report is not None  # noqa: S101 - the migration was found above
    if args.json:
        return _json(report.model_dump(mode="json"))
    lines = [
        f"created by {migration.tag}.sql but not dropped: {x}" for x in report.created_not_dropped
    ]
    lines += [
        f"dropped but never created by {migration.tag}.sql: {x}" for x in report.dropped_not_created
    ]
    print(
        "\n".join(lines) or f"{migration.tag}: the runbook drops exactly what the migration created"
    )
    return 1 if report.created_not_dropped else 0


def _date(text: str) -> datetime:
    """`2026-12-01` or `2026-12-01T03:00`, read as UTC unless it says otherwise."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        msg = f"{text!r} is not a date (use 2026-12-01 or 2026-12-01T03:00)"
        raise argparse.ArgumentTypeError(msg) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _public(run: Run) -> dict[str, Any]:
    return run.model_dump(mode="json")


def _json(value: object) -> int:
    print(json.dumps(value, indent=2, default=str))
    return 0


def _print(text: str) -> int:
    print(text)
    return 0
