"""Distinctive secrets on a real server, and every channel rollbot writes to, read back as text.

The tests that attack "no secret leaves rollbot" configure one value of each kind rollbot is
told (database passwords in a URL, in `password=` conninfo, in PGPASSWORD; the Slack tokens
and signing secret), drive the failures that tend to echo them, then search everything rollbot
wrote: Slack's request bodies, the terminal, every row of its state tables, its log lines.
"""

from __future__ import annotations

import contextlib
import socket
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

# Rows of the application's that hold a connection string and a password, as sync tables do;
# PostgreSQL quotes a failing row whole in its error, so its own words then carry a password.
# Deleting from the parent sets the NOT NULL child column to NULL: that fails, with the row.
VAULT = """
CREATE TABLE vault (id int PRIMARY KEY, note text NOT NULL);
INSERT INTO vault SELECT i, 'note ' || i FROM generate_series(1, 5) AS i;
CREATE TABLE vault_share (
  id int PRIMARY KEY, sync text NOT NULL,
  vault_id int NOT NULL REFERENCES vault ON DELETE SET NULL
);
CREATE TABLE vault_log (id int PRIMARY KEY);
INSERT INTO vault_log VALUES (1);
CREATE TABLE vault_log_share (
  id int PRIMARY KEY, sync text NOT NULL,
  log_id int NOT NULL REFERENCES vault_log ON DELETE SET NULL
);
INSERT INTO vault_log_share VALUES (1, {conninfo} || ' refused password ' || {password}, 1);
"""

# Shared after the plan, so only the execution meets it (the rehearsal's copy has none).
SHARE = "INSERT INTO vault_share VALUES (1, %s || ' refused password ' || %s, 1)"

VAULT_RUNBOOK = """---
journal: false  # not a Drizzle migration of this project
---
# Empty the vault

**Migration File**: `0031_vault.sql`

## Quick Rollback

```sql
DELETE FROM vault WHERE id > 0;
```
"""

# vault_log_share's row is in the backup: the rehearsal (with the affected rows) meets it.
VAULT_LOG_RUNBOOK = VAULT_RUNBOOK.replace("0031_vault", "0032_vault_log").replace(
    "FROM vault", "FROM vault_log"
)


def runbook_holding(secret: str) -> str:
    """A runbook whose own SQL holds a secret: it can be shown only masked, so never approved."""
    return VAULT_RUNBOOK.replace("0031_vault", "0033_vault_note").replace(
        "WHERE id > 0", f"WHERE note = '{secret}'"
    )


@dataclass
class Secrets:
    """One distinctive value per kind of secret rollbot is given, and where they are set."""

    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:10])

    @property
    def db_password(self) -> str:
        """The password of the role rollbot connects to its target as (in the URL)."""
        return f"S3cr3t-db-{self.tag}"

    @property
    def state_password(self) -> str:
        """The state database's password, given as `password=` conninfo."""
        return f"S3cr3t-state-{self.tag}"

    @property
    def gone_password(self) -> str:
        """The password of a target that does not answer (a wrong port)."""
        return f"S3cr3t-gone-{self.tag}"

    @property
    def bad_password(self) -> str:
        """The password inside a URL libpq cannot parse, and quotes whole in its error."""
        return f"S3cr3t-bad-{self.tag}"

    @property
    def reader_password(self) -> str:
        """The password of a role that may connect but not dump (pg_dump fails)."""
        return f"S3cr3t-reader-{self.tag}"

    @property
    def pgpassword(self) -> str:
        """PGPASSWORD in rollbot's environment."""
        return f"S3cr3t-env-{self.tag}"

    @property
    def bot_token(self) -> str:
        """SLACK_BOT_TOKEN."""
        return f"xoxb-T0k3n-{self.tag}"

    @property
    def app_token(self) -> str:
        """SLACK_APP_TOKEN (given, but the tests serve HTTP)."""
        return f"xapp-T0k3n-{self.tag}"

    @property
    def signing_secret(self) -> str:
        """SLACK_SIGNING_SECRET."""
        return f"S1gn1ng-{self.tag}"

    @property
    def literal(self) -> str:
        """A password another session sets: only ever shown masked."""
        return f"L1teral-{self.tag}"

    @property
    def app_role(self) -> str:
        """The superuser role rollbot connects as."""
        return f"rb_app_{self.tag}"

    @property
    def reader_role(self) -> str:
        """A role that may read the catalog but not the tables, so pg_dump fails."""
        return f"rb_reader_{self.tag}"

    @property
    def victim_role(self) -> str:
        """The role a DBA's session is changing the password of."""
        return f"rb_victim_{self.tag}"

    def values(self) -> list[str]:
        """Every value that must appear nowhere rollbot writes."""
        return [
            self.db_password,
            self.state_password,
            self.gone_password,
            self.bad_password,
            self.reader_password,
            self.pgpassword,
            self.bot_token,
            self.app_token,
            self.signing_secret,
            self.literal,
        ]

    def urls(self, db: str) -> dict[str, str]:
        """The environment naming the target, the state database and the extra targets."""
        params = {k: str(v) for k, v in conninfo_to_dict(db).items() if v is not None}
        host, port, dbname = params["host"], params.get("port", "5432"), params["dbname"]
        state = make_conninfo(**params, user=self.app_role, password=self.state_password)
        gone_port = free_port()
        reader = f"{self.reader_role}:{self.reader_password}"
        return {
            "DATABASE_URL": f"postgresql://{self.app_role}:{self.db_password}@{host}:{port}/{dbname}",
            "ROLLBOT_STATE_URL": state,
            "ROLLBOT_TARGETS": ",".join(
                (
                    f"gone=postgresql://{self.app_role}:{self.gone_password}@{host}:{gone_port}/x",
                    f"bad=postgresql://{self.app_role}:{self.bad_password}@[{host}/{dbname}",
                    f"reader=postgresql://{reader}@{host}:{port}/{dbname}",
                )
            ),
            "PGPASSWORD": self.pgpassword,
            "SLACK_BOT_TOKEN": self.bot_token,
            "SLACK_SIGNING_SECRET": self.signing_secret,
        }


@contextlib.contextmanager
def secret_roles(db: str, secrets: Secrets) -> Iterator[None]:
    """The roles, with their passwords, and the vault with its echoing rows, in `db`."""
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}").format(
                sql.Identifier(secrets.app_role), sql.Literal(secrets.db_password)
            )
        )
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(secrets.reader_role), sql.Literal(secrets.reader_password)
            )
        )
        conn.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(secrets.victim_role)))
        # The reader may plan (catalog, journal, counts) but not dump: the vault is not its.
        conn.execute(
            sql.SQL(
                "GRANT USAGE ON SCHEMA drizzle TO {role};"
                " GRANT SELECT ON ALL TABLES IN SCHEMA public, drizzle TO {role}"
            ).format(role=sql.Identifier(secrets.reader_role))
        )
        conninfo = f"postgresql://sync:{secrets.db_password}@replica/app"
        conn.execute(
            VAULT.format(
                conninfo=sql.Literal(conninfo).as_string(conn),
                password=sql.Literal(secrets.db_password).as_string(conn),
            ).encode()
        )
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(
            sql.SQL("REVOKE ALL ON vault, vault_share, vault_log, vault_log_share FROM {}").format(
                sql.Identifier(secrets.reader_role)
            )
        )
    try:
        yield
    finally:
        with psycopg.connect(db, autocommit=True) as conn:
            dbname = conn.info.dbname
            conn.execute(
                sql.SQL(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE usename IN ({}, {}) AND datname = {}"
                ).format(
                    sql.Literal(secrets.app_role),
                    sql.Literal(secrets.reader_role),
                    sql.Literal(dbname),
                )
            )
            for role in (secrets.app_role, secrets.reader_role, secrets.victim_role):
                with contextlib.suppress(psycopg.Error):
                    conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
                with contextlib.suppress(psycopg.Error):
                    conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def free_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def state_tables_text(db: str) -> str:
    """Every row of every table in rollbot's schema, as PostgreSQL prints it."""
    lines: list[str] = []
    with psycopg.connect(db) as conn:
        tables = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'rollbot' ORDER BY 1"
        ).fetchall()
        for (table,) in tables:
            rows = conn.execute(
                sql.SQL("SELECT t::text FROM rollbot.{} AS t").format(sql.Identifier(table))
            ).fetchall()
            lines += [f"{table}: {row[0]}" for row in rows]
    return "\n".join(lines)


def leaks(channels: dict[str, str], secrets: Iterable[str]) -> list[str]:
    """`channel: secret` for each secret found in a channel; empty when nothing leaked."""
    return [
        f"{name}: {secret} … {text[max(0, text.find(secret) - 120) : text.find(secret) + 60]!r}"
        for name, text in channels.items()
        for secret in secrets
        if secret in text
    ]


def share_the_vault(db: str, secrets: Secrets) -> None:
    """The row that makes the execution of 0031 fail, quoting a password."""
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(
            SHARE, (f"postgresql://sync:{secrets.db_password}@replica/app", secrets.db_password)
        )
