"""Which functions a runbook's expressions may call: none that act outside the transaction.

A rollback runs in one transaction so that a failure leaves nothing behind, and it is rehearsed
on a scratch copy before anyone approves it. Both promises hold only for SQL whose effects stay
inside the transaction. `pg_terminate_backend()` in a DELETE's WHERE clause ends an application
session during the rehearsal already; `lo_export()` writes a file on the server; `nextval()` and
advisory locks survive a ROLLBACK; `pg_sleep()` holds every lock the rollback took. So a call is
allowed only when the live catalog says the function is IMMUTABLE or STABLE (or it is one of a
few volatile built-ins known to change nothing, such as `random()`), and never when it is on the
deny-list below, whatever the catalog says. That a function is PostgreSQL's own at all, and
not a user's code hiding behind its label, is decided in `usercode.py`.
"""

from __future__ import annotations

from typing import Literal

Volatility = Literal["immutable", "stable", "volatile"]

# Refused at parse time, with the reason shown: what each one reaches outside the transaction.
DENIED: dict[str, str] = {
    **dict.fromkeys(
        ("pg_terminate_backend", "pg_cancel_backend"), "it signals another database session"
    ),
    **dict.fromkeys(
        (
            "pg_reload_conf",
            "pg_rotate_logfile",
            "pg_promote",
            "pg_switch_wal",
            "pg_create_restore_point",
            "pg_log_backend_memory_contexts",
            "pg_logical_emit_message",
            "pg_replication_origin_create",
            "pg_drop_replication_slot",
            "pg_create_logical_replication_slot",
            "pg_create_physical_replication_slot",
        ),
        "it acts on the server, not on the transaction",
    ),
    **dict.fromkeys(
        (
            "pg_read_file",
            "pg_read_binary_file",
            "pg_ls_dir",
            "pg_stat_file",
            "pg_file_write",
            "pg_file_unlink",
            "pg_file_rename",
            "lo_import",
            "lo_export",
        ),
        "it reads or writes files on the database server",
    ),
    **dict.fromkeys(
        ("dblink", "dblink_exec", "dblink_connect", "dblink_send_query"),
        "it runs SQL in another connection, outside this transaction",
    ),
    **dict.fromkeys(
        ("nextval", "setval"), "sequence changes are not undone when the transaction rolls back"
    ),
    **dict.fromkeys(
        (
            "pg_advisory_lock",
            "pg_advisory_lock_shared",
            "pg_try_advisory_lock",
            "pg_try_advisory_lock_shared",
            "pg_advisory_unlock",
            "pg_advisory_unlock_all",
        ),
        "session-level advisory locks outlive the transaction",
    ),
    "pg_notify": "the notification reaches other sessions when the transaction commits",
    "set_config": "it can change settings for the rest of the session",
    **dict.fromkeys(
        ("pg_sleep", "pg_sleep_for", "pg_sleep_until"),
        "it holds the rollback's locks, and so stalls the application, for as long as it sleeps",
    ),
}

# Volatile in the catalog, but they only compute a value: nothing outside the expression moves.
HARMLESS_VOLATILE = frozenset({"random", "gen_random_uuid", "clock_timestamp", "timeofday"})


def bare_name(name: str) -> str:
    """`pg_catalog.nextval` -> `nextval`, case-folded as the server folds unquoted names."""
    return name.rsplit(".", 1)[-1].lower()


def denied_reason(name: str) -> str | None:
    """Why a call is refused whatever the catalog says, or None."""
    return DENIED.get(bare_name(name))


def call_problem(name: str, volatility: Volatility | None) -> str | None:
    """Why a call may not run in a rollback, given what the catalog says of it, or None."""
    reason = denied_reason(name)
    if reason is not None:
        return f"{name}() is never allowed in a runbook: {reason}"
    if volatility is None:
        return f"{name}() is not a function this database knows"
    if volatility == "volatile" and bare_name(name) not in HARMLESS_VOLATILE:
        return (
            f"{name}() is VOLATILE, so it may act outside the transaction (and would already "
            "during the rehearsal); only IMMUTABLE or STABLE functions may run in a runbook"
        )
    return None
