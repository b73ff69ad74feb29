"""Structured logs: JSON lines with a run id on every line, secrets masked.

Processors are small and composed once here. Context (the run id, the Slack event id) is bound
with contextvars, so every line logged while handling a run carries it without being passed.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any, TextIO

import structlog

from bot.core.redact import redact, secrets_of

if TYPE_CHECKING:
    from collections.abc import Iterable, MutableMapping


class Redactor:
    """A structlog processor that masks secrets in every value of the event."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = secrets_of(secrets)

    def __call__(
        self, _logger: object, _method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        """Mask every string value, nested ones included."""
        return {key: self._clean(value) for key, value in event.items()}

    def _clean(self, value: object) -> object:
        if isinstance(value, str):
            return redact(value, self.secrets)
        if isinstance(value, dict):
            return {k: self._clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean(v) for v in value]
        return value


def with_run_id(
    _logger: object, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Every line has a run_id key, null outside a run, so log queries never miss a line."""
    event.setdefault("run_id", None)
    return event


def configure_logging(
    *,
    secrets: Iterable[str] = (),
    level: str = "info",
    stream: TextIO | None = None,
    json: bool | None = None,
) -> None:
    """JSON when not on a terminal; called once by the composition root."""
    stream = stream or sys.stderr
    render_json = json if json is not None else not stream.isatty()
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if render_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    redactor = Redactor(secrets)
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
