"""Structured logs: JSON lines with a run id on every line, secrets masked.

Processors are small and composed once here. Context (the run id, the Slack event id) is bound
with contextvars, so every line logged while handling a run carries it without being passed.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any, TextIO

from bot.core.redact import Redactor, inert_controls

if TYPE_CHECKING:
    from collections.abc import Iterable, MutableMapping


class RedactingProcessor:
    """A structlog processor that masks secrets in every value of the event.

    It runs after the traceback is formatted, so an exception's text (a driver's error
    quoting a connection string) is cleaned like any other value.
    """

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor

    def __call__(
        self, _logger: object, _method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        """Mask every string value, nested ones included."""
        return {key: self.redactor.value(value) for key, value in event.items()}


class MaskedStream:
    """A text stream that masks secrets in everything written to it: the terminal's choke point.

    Every line the command line prints (results, `--json`, progress, errors) goes through
    one of these, so no print needs to remember to clean what it prints: of secrets, and of
    control characters from the database (only the progress bar's own stream keeps them). A
    secret split across two writes would pass; `print` writes each formatted string whole.
    """

    def __init__(self, stream: TextIO, redactor: Redactor, *, inert: bool = True) -> None:
        self.stream = stream
        self.redactor = redactor
        self.inert = inert  # control characters shown as escapes (all but the progress bar's)

    def write(self, text: str) -> int:
        """Write `text` cleaned; returns the length of what was asked, as files do."""
        cleaned = self.redactor.text(text)
        self.stream.write(inert_controls(cleaned) if self.inert else cleaned)
        return len(text)

    def flush(self) -> None:
        """Flush the stream underneath."""
        self.stream.flush()

    def isatty(self) -> bool:
        """Whether the stream underneath is a terminal (the log format depends on it)."""
        return self.stream.isatty()

    def __getattr__(self, name: str) -> Any:  # noqa: ANN401 - whatever the stream has
        return getattr(self.stream, name)


def with_run_id(
    _logger: object, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Every line has a run_id key, null outside a run, so log queries never miss a line."""
    event.setdefault("run_id", None)
    return event


def configure_logging(
    *,
    secrets: Iterable[str] | Redactor = (),
    level: str = "info",
    stream: TextIO | None = None,
    json: bool | None = None,
) -> None:
    """JSON when not on a terminal; called once by the composition root.

    structlog is imported here, not at the top: a command that never logs (`rollbot --help`)
    must not pay for it.
    """
    import structlog  # noqa: PLC0415

    stream = stream or sys.stderr
    render_json = json if json is not None else not stream.isatty()
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if render_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    redactor = RedactingProcessor(secrets if isinstance(secrets, Redactor) else Redactor(secrets))
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        with_run_id,
    ]
    # Libraries (psycopg_pool, slack_bolt, waitress) log through the standard library: their
    # lines get the same shape, run id and redaction as ours.
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                redactor,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(logging.getLevelNamesMapping()[level.upper()])
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            redactor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
