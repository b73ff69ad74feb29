"""What rollbot knows about its Slack conversation, kept next to the runs.

Which Slack message shows which run (so a reaction finds its run), which event ids were already
handled (Slack delivers at least once), and the outbox of messages still to deliver. All of it
lives in PostgreSQL so that a restart, a second replica or a Slack outage loses nothing.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING

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
        with self._store.connection() as conn:
            row = conn.execute(
                sql.SQL(
                    "INSERT INTO {}.seen_events (event_id) VALUES (%s)"
                    " ON CONFLICT DO NOTHING RETURNING event_id"
                ).format(sql.Identifier(STATE_SCHEMA)),
                (event_id,),
            ).fetchone()
        return row is not None

    def forget_seen(self, prefix: str, *, older_than_s: float) -> int:
        """Drop seen ids starting with `prefix` older than `older_than_s`; how many went."""
        with self._store.connection() as conn:
            cursor = conn.execute(
                sql.SQL(
                    "DELETE FROM {}.seen_events WHERE starts_with(event_id, %s)"
                    " AND seen_at < now() - make_interval(secs => %s)"
                ).format(sql.Identifier(STATE_SCHEMA)),
                (prefix, older_than_s),
            )
        return cursor.rowcount

    def run_for_message(self, channel: str, ts: str) -> Run | None:
        """The run whose plan message this is, if any."""
        with self._store.connection() as conn:
            row = conn.execute(
                sql.SQL(
                    "SELECT r.* FROM {0}.slack_messages m JOIN {0}.runs r ON r.id = m.run_id"
                    " WHERE m.channel = %s AND m.ts = %s AND m.role = 'plan'"
                ).format(sql.Identifier(STATE_SCHEMA)),
                (channel, ts),
            ).fetchone()
        return run_from_row(row) if row else None

    def slack_message(self, run_id: int, role: Role) -> tuple[str, str] | None:
        """(channel, ts) of a run's message in a role, once it has been posted."""
        with self._store.connection() as conn:
            row = conn.execute(
                sql.SQL(
                    "SELECT channel, ts FROM {}.slack_messages WHERE run_id = %s AND role = %s"
                ).format(sql.Identifier(STATE_SCHEMA)),
                (run_id, role),
            ).fetchone()
        return (str(row["channel"]), str(row["ts"])) if row else None

    def remember_message(self, run_id: int, role: Role, channel: str, ts: str) -> None:
        """Note where a run's message was posted."""
        with self._store.connection() as conn:
            conn.execute(
                sql.SQL(
                    "INSERT INTO {}.slack_messages (run_id, role, channel, ts)"
                    " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING"
                ).format(sql.Identifier(STATE_SCHEMA)),
                (run_id, role, channel, ts),
            )

    def pending(self, *, limit: int = 100) -> list[Pending]:
        """Messages due for delivery, oldest first."""
        with self._store.connection() as conn:
            rows = conn.execute(
                sql.SQL(
                    "SELECT id, run_id, message, attempts, next_attempt_at <= now() AS due"
                    " FROM {}.outbox"
                    " WHERE delivered_at IS NULL AND gave_up_at IS NULL"
                    " ORDER BY id LIMIT %s"
                ).format(sql.Identifier(STATE_SCHEMA)),
                (limit,),
            ).fetchall()
        return [Pending.model_validate(row) for row in rows]

    def delivered(self, message_id: int) -> None:
        """Slack accepted the message (or a newer one made it pointless)."""
        with self._store.connection() as conn:
            conn.execute(
                sql.SQL("UPDATE {}.outbox SET delivered_at = now() WHERE id = %s").format(
                    sql.Identifier(STATE_SCHEMA)
                ),
                (message_id,),
            )

    def retry_later(self, message_id: int, error: str, delay_s: float) -> None:
        """Slack failed in a way that may pass: try again after `delay_s`."""
        with self._store.connection() as conn:
            conn.execute(
                sql.SQL(
                    "UPDATE {}.outbox SET attempts = attempts + 1, last_error = %s,"
                    " next_attempt_at = now() + make_interval(secs => %s) WHERE id = %s"
                ).format(sql.Identifier(STATE_SCHEMA)),
                (error, delay_s, message_id),
            )

    def give_up(self, message_id: int, error: str) -> None:
        """Slack refused the message for good (e.g. channel_not_found)."""
        with self._store.connection() as conn:
            conn.execute(
                sql.SQL(
                    "UPDATE {}.outbox SET gave_up_at = now(), last_error = %s WHERE id = %s"
                ).format(sql.Identifier(STATE_SCHEMA)),
                (error, message_id),
            )

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
