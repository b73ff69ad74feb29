"""What rollbot knows about its Slack conversation, kept next to the runs.

Which Slack message shows which run (so a reaction finds its run), which event ids were already
handled (Slack delivers at least once), and the outbox of messages still to deliver. All of it
lives in PostgreSQL so that a restart, a second replica or a Slack outage loses nothing.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, LiteralString

from psycopg import sql

from bot.core.outbox import Pending, Role, Undelivered
from bot.state.store import STATE_SCHEMA, run_from_row

if TYPE_CHECKING:
    from collections.abc import Iterator

    from bot.core.outbox import Message
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

    def pending(self, *, limit: int = 500) -> list[Pending]:
        """Messages not yet delivered nor given up, oldest first (due or still backing off).

        Those backing off are returned too: a later message of the same thread must wait for
        them, so the courier needs to see them to keep the order.
        """
        rows = self._rows(
            "SELECT id, run_id, message, attempts, next_attempt_at <= now() AS due,"
            " sending_since IS NOT NULL AS uncertain"
            " FROM {schema}.outbox WHERE delivered_at IS NULL AND gave_up_at IS NULL"
            " ORDER BY id LIMIT %s",
            (limit,),
        )
        return [Pending.model_validate(row) for row in rows]

    def sending(self, message_id: int) -> None:
        """Note, before the call, that Slack may be about to accept this message."""
        self._write("UPDATE {schema}.outbox SET sending_since = now() WHERE id = %s", (message_id,))

    def accepted(self, item: Pending, channel: str, ts: str) -> None:
        """Slack accepted the message at (channel, ts): one transaction, the first thing done.

        A post also becomes the run's message in its role, which later edits and replies (and
        reactions) are matched to.
        """
        with self._store.connection() as conn, conn.transaction():
            if item.message.action == "post":
                conn.execute(
                    _in_schema(
                        "INSERT INTO {schema}.slack_messages (run_id, role, channel, ts)"
                        " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING"
                    ),
                    (item.run_id, item.message.role, channel, ts),
                )
            conn.execute(
                _in_schema(
                    "UPDATE {schema}.outbox SET delivered_at = now(), channel = %s, ts = %s,"
                    " sending_since = NULL WHERE id = %s"
                ),
                (channel, ts, item.id),
            )

    def delivered(self, message_id: int) -> None:
        """A newer message made this one pointless (an edit overtaken by a later edit)."""
        self._write("UPDATE {schema}.outbox SET delivered_at = now() WHERE id = %s", (message_id,))

    def failed(
        self, message_id: int, error: str, *, delay_s: float, deadline_s: float, sent: bool
    ) -> bool:
        """One failed attempt: retry after `delay_s`, or give up once `deadline_s` has passed.

        The deadline counts from when the message was written, so however it fails, a message
        is given up after a bounded time; the last attempt is made at the deadline itself.
        `sent` keeps the mark that Slack may have accepted it. True when it was given up.
        """
        rows = self._rows(
            "UPDATE {schema}.outbox SET attempts = attempts + 1, last_error = %(error)s,"
            " sending_since = CASE WHEN %(sent)s THEN sending_since END,"
            " gave_up_at = CASE WHEN now() >= created_at + make_interval(secs => %(deadline)s)"
            "   THEN now() END,"
            " next_attempt_at = least(now() + make_interval(secs => %(delay)s),"
            "   created_at + make_interval(secs => %(deadline)s))"
            " WHERE id = %(id)s RETURNING gave_up_at IS NOT NULL AS gave_up",
            {
                "error": self._store.redact(error),
                "sent": sent,
                "deadline": deadline_s,
                "delay": delay_s,
                "id": message_id,
            },
        )
        return bool(rows and rows[0]["gave_up"])

    def give_up(self, message_id: int, error: str) -> None:
        """Slack refused the message for good (e.g. channel_not_found), or it may be there."""
        self._write(
            "UPDATE {schema}.outbox SET gave_up_at = now(), attempts = attempts + 1,"
            " last_error = %s WHERE id = %s",
            (self._store.redact(error), message_id),
        )

    def backlog_age_s(self) -> float:
        """Seconds the longest-due message has waited for the courier; 0 when none is due.

        Messages backing off after a failure are not due, so a rate-limited Slack does not
        count; a due message left waiting means the courier is not delivering.
        """
        rows = self._rows(
            "SELECT coalesce(extract(epoch FROM now() - min(next_attempt_at)), 0)::float8 AS age"
            " FROM {schema}.outbox WHERE delivered_at IS NULL AND gave_up_at IS NULL"
            " AND next_attempt_at <= now()",
            (),
        )
        return float(rows[0]["age"]) if rows else 0.0

    def add(self, run_id: int, message: Message) -> None:
        """A message that announces no change of the run (a delivery that was given up)."""
        self._store.add_message(run_id, message)

    def undelivered(self, run_id: int) -> list[Undelivered]:
        """A run's messages Slack has not accepted that failed at least once, oldest first."""
        rows = self._rows(
            "SELECT message ->> 'action' AS action, message ->> 'role' AS role, attempts,"
            " coalesce(last_error, 'unknown') AS error, gave_up_at IS NOT NULL AS given_up"
            " FROM {schema}.outbox WHERE run_id = %s AND delivered_at IS NULL"
            " AND (attempts > 0 OR gave_up_at IS NOT NULL) ORDER BY id",
            (run_id,),
        )
        return [Undelivered.model_validate(row) for row in rows]

    def _rows(
        self, query: LiteralString, params: tuple[object, ...] | dict[str, object]
    ) -> list[dict[str, Any]]:
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
