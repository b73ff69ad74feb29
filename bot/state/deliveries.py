"""What rollbot knows about its Slack conversation, kept next to the runs.

Which Slack message shows which run (so a reaction finds its run), which event ids were already
handled (Slack delivers at least once), and the outbox of messages still to deliver. All of it
lives in PostgreSQL so that a restart, a second replica or a Slack outage loses nothing.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, LiteralString

from psycopg import sql

from bot.core.outbox import Pending, Role
from bot.state.store import STATE_SCHEMA, run_from_row

if TYPE_CHECKING:
    from collections.abc import Iterator

    from bot.core.run import Run
    from bot.state.store import RunStore


class Deliveries:
    """Slack message references, seen events and the outbox, on the run store's pool."""

    def __init__(self, store: RunStore) -> None:
        self._store = store

    def first_time(self, event_id: str) -> bool:
        """True the first time an event id is seen (Slack delivers at least once)."""
        return bool(
            self._rows(
                "INSERT INTO {schema}.seen_events (event_id) VALUES (%s)"
                " ON CONFLICT DO NOTHING RETURNING event_id",
                (event_id,),
            )
        )

    def forget_seen(self, prefix: str, *, older_than_s: float) -> int:
        """Drop seen ids starting with `prefix` older than `older_than_s`; how many went."""
        return self._write(
            "DELETE FROM {schema}.seen_events WHERE starts_with(event_id, %s)"
            " AND seen_at < now() - make_interval(secs => %s)",
            (prefix, older_than_s),
        )

    def run_for_message(self, channel: str, ts: str) -> Run | None:
        """The run whose plan message this is, if any."""
        rows = self._rows(
            "SELECT r.* FROM {schema}.slack_messages m JOIN {schema}.runs r ON r.id = m.run_id"
            " WHERE m.channel = %s AND m.ts = %s AND m.role = 'plan'",
            (channel, ts),
        )
        return run_from_row(rows[0]) if rows else None

    def slack_message(self, run_id: int, role: Role) -> tuple[str, str] | None:
        """(channel, ts) of a run's message in a role, once it has been posted."""
        rows = self._rows(
            "SELECT channel, ts FROM {schema}.slack_messages WHERE run_id = %s AND role = %s",
            (run_id, role),
        )
        return (str(rows[0]["channel"]), str(rows[0]["ts"])) if rows else None

    def remember_message(self, run_id: int, role: Role, channel: str, ts: str) -> None:
        """Note where a run's message was posted."""
        self._write(
            "INSERT INTO {schema}.slack_messages (run_id, role, channel, ts)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (run_id, role, channel, ts),
        )

    def pending(self, *, limit: int = 100) -> list[Pending]:
        """Messages due for delivery, oldest first."""
        rows = self._rows(
            "SELECT id, run_id, message, attempts, next_attempt_at <= now() AS due"
            " FROM {schema}.outbox WHERE delivered_at IS NULL AND gave_up_at IS NULL"
            " ORDER BY id LIMIT %s",
            (limit,),
        )
        return [Pending.model_validate(row) for row in rows]

    def delivered(self, message_id: int) -> None:
        """Slack accepted the message (or a newer one made it pointless)."""
        self._write("UPDATE {schema}.outbox SET delivered_at = now() WHERE id = %s", (message_id,))

    def retry_later(self, message_id: int, error: str, delay_s: float) -> None:
        """Slack failed in a way that may pass: try again after `delay_s`."""
        self._write(
            "UPDATE {schema}.outbox SET attempts = attempts + 1, last_error = %s,"
            " next_attempt_at = now() + make_interval(secs => %s) WHERE id = %s",
            (self._store.redact(error), delay_s, message_id),
        )

    def give_up(self, message_id: int, error: str) -> None:
        """Slack refused the message for good (e.g. channel_not_found)."""
        self._write(
            "UPDATE {schema}.outbox SET gave_up_at = now(), last_error = %s WHERE id = %s",
            (self._store.redact(error), message_id),
        )

    def _rows(self, query: LiteralString, params: tuple[object, ...]) -> list[dict[str, Any]]:
        """Run one statement on rollbot's schema; its rows (if it returns any)."""
        with self._store.connection() as conn:
            cursor = conn.execute(_in_schema(query), params)
            return cursor.fetchall() if cursor.description else []

    def _write(self, query: LiteralString, params: tuple[object, ...]) -> int:
        """Run one statement on rollbot's schema; how many rows it changed."""
        with self._store.connection() as conn:
            return conn.execute(_in_schema(query), params).rowcount

    @contextmanager
    def exclusive(self, key: int) -> Iterator[bool]:
        """Hold a session advisory lock while the block runs; yields whether we got it."""
        with self._store.connection() as conn:
            row = conn.execute("SELECT pg_try_advisory_lock(%s) AS mine", (key,)).fetchone()
            mine = bool(row and row["mine"])
            try:
                yield mine
            finally:
                if mine:
                    conn.execute("SELECT pg_advisory_unlock(%s)", (key,))


def _in_schema(query: LiteralString) -> sql.Composed:
    return sql.SQL(query).format(schema=sql.Identifier(STATE_SCHEMA))
