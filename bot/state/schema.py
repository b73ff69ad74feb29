"""The `rollbot` schema, as numbered migrations the bot applies to itself.

Each entry runs once, in order, inside one transaction under an advisory lock, so two replicas
starting together cannot both apply it. Never edit a released entry: append a new one.
"""

from __future__ import annotations

MIGRATIONS: tuple[tuple[int, str], ...] = (
    (
        1,
        """
CREATE TABLE {schema}.runs (
    id bigserial PRIMARY KEY,
    kind text NOT NULL DEFAULT 'rollback',
    migration_id text NOT NULL,
    runbook_name text NOT NULL,
    target_name text NOT NULL,
    target_label text NOT NULL,
    target_identity text NOT NULL,
    state text NOT NULL,
    requested_by text NOT NULL,
    channel text,
    approvers text[] NOT NULL DEFAULT '{{}}',
    required_approvals int NOT NULL DEFAULT 1 CHECK (required_approvals >= 1),
    plan jsonb NOT NULL,
    plan_hash text NOT NULL,
    backup jsonb,
    outcome jsonb,
    reason text,
    xid bigint,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz
);
-- One active run per migration and target: a second request is pointed to the first.
CREATE UNIQUE INDEX runs_one_active ON {schema}.runs (target_identity, migration_id)
    WHERE state IN ('requested', 'backing_up', 'awaiting_approval', 'approved', 'executing');
CREATE INDEX runs_state ON {schema}.runs (state);

-- The audit trail: rows are only ever added.
CREATE TABLE {schema}.run_events (
    id bigserial PRIMARY KEY,
    run_id bigint NOT NULL REFERENCES {schema}.runs (id),
    at timestamptz NOT NULL DEFAULT now(),
    kind text NOT NULL,
    from_state text,
    to_state text,
    actor text,
    data jsonb NOT NULL DEFAULT '{{}}'
);
CREATE INDEX run_events_run ON {schema}.run_events (run_id, id);
CREATE FUNCTION {schema}.append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'rollbot audit events are append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER run_events_append_only BEFORE UPDATE OR DELETE ON {schema}.run_events
    FOR EACH ROW EXECUTE FUNCTION {schema}.append_only();
CREATE TRIGGER run_events_no_truncate BEFORE TRUNCATE ON {schema}.run_events
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.append_only();
""",
    ),
    (
        2,
        """
-- Which Slack message shows which run: reactions are matched to runs through it.
CREATE TABLE {schema}.slack_messages (
    run_id bigint NOT NULL REFERENCES {schema}.runs (id),
    role text NOT NULL,
    channel text NOT NULL,
    ts text NOT NULL,
    PRIMARY KEY (run_id, role)
);
CREATE UNIQUE INDEX slack_messages_by_ts ON {schema}.slack_messages (channel, ts);

-- Slack delivers events at least once: an event id is acted on the first time only.
CREATE TABLE {schema}.seen_events (
    event_id text PRIMARY KEY,
    seen_at timestamptz NOT NULL DEFAULT now()
);

-- Messages to Slack, written in the same transaction as the state change they announce,
-- delivered (in order, per run) by the courier; kept until Slack accepts them.
CREATE TABLE {schema}.outbox (
    id bigserial PRIMARY KEY,
    run_id bigint NOT NULL REFERENCES {schema}.runs (id),
    message jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    attempts int NOT NULL DEFAULT 0,
    last_error text,
    delivered_at timestamptz,
    gave_up_at timestamptz
);
CREATE INDEX outbox_pending ON {schema}.outbox (id)
    WHERE delivered_at IS NULL AND gave_up_at IS NULL;
""",
    ),
    (
        3,
        """
-- A refusal is answered once per run, person and reason, even when reactions race.
CREATE UNIQUE INDEX run_events_refused_once
    ON {schema}.run_events (run_id, actor, (data ->> 'why'))
    WHERE kind = 'approval_refused';
""",
    ),
    (
        4,
        """
-- The rehearsal on a scratch copy, and the earlier run a production plan was promoted from.
ALTER TABLE {schema}.runs ADD COLUMN rehearsal jsonb;
ALTER TABLE {schema}.runs ADD COLUMN promoted_from jsonb;
""",
    ),
    (
        5,
        """
-- The courier's receipt and intent per message. `sending_since` is set before each call that
-- could make Slack post it and cleared when Slack's answer proves nothing was posted: a message
-- found with it set may already be in Slack, so it is never posted blindly again. `channel` and
-- `ts` are where Slack put a delivered message.
ALTER TABLE {schema}.outbox ADD COLUMN sending_since timestamptz;
ALTER TABLE {schema}.outbox ADD COLUMN channel text;
ALTER TABLE {schema}.outbox ADD COLUMN ts text;
CREATE INDEX outbox_by_run ON {schema}.outbox (run_id, id);
""",
    ),
    (
        6,
        """
-- Notes sent at most once per run (the reminder before the approval window closes), however
-- many replicas decide at the same moment that it is due.
CREATE UNIQUE INDEX run_events_once ON {schema}.run_events (run_id, kind)
    WHERE kind = 'approval_reminded';
""",
    ),
)
