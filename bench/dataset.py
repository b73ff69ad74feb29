"""asset_forge at migration 0023 at a realistic size, built in well under a minute.

`--scale 1` is 1.8 million rows in a database of about 600 MiB (630 MB), where the six tables
migration 0023 creates (and the seed's runbook drops) hold 1.79 million of them and the four
tables that stay hold ten thousand: an application whose error log and pipeline history have
grown for months. The data is shaped like the sample's (`demo/sample.py`) but wider: error
rows carry a stack trace and a JSON context, stages their input and output.

Speed comes from doing everything on the server and in bulk: the schema is migrated by
Drizzle's migrator as in real use, then its indexes and constraints are set aside (their exact
definitions read from the catalog), the rows go in with `INSERT … SELECT generate_series` on
two connections at once (one per core), and the constraints and indexes are rebuilt from those
definitions, again two at a time, before `VACUUM (ANALYZE)`. The catalog ends up as Drizzle
left it, so rollbot's proof against 0022 holds as on any migrated database. Tables stay logged:
an unlogged table would change what pg_dump writes.
"""

from __future__ import annotations

import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, LiteralString

import psycopg
from psycopg import sql

from demo.sample import MIGRATION_0023_TABLES, apply_migrations

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from bench.server import Server

# Rows per table at scale 1: 1.79 million in the tables 0023 creates, ten thousand in the rest.
ROWS_AT_SCALE_1: dict[str, int] = {
    "users": 1_000,
    "projects": 800,
    "sessions": 2_200,
    "assets": 6_000,
    "generation_pipelines": 125_000,
    "pipeline_stages": 500_000,  # four per pipeline
    "asset_variants": 110_000,
    "variant_statistics": 5_000,  # one per base asset, so at most the assets
    "api_errors": 950_000,
    "error_aggregations": 100_000,
}
STAGES_PER_PIPELINE = 4
MAINTENANCE_WORK_MEM = "256MB"

# The stack trace a server error carries (every other 500, one row in sixteen): about 200 bytes.
_STACK: LiteralString = (
    "CASE WHEN mod(g, 16) = 5 THEN 'Error: ' || m.message || E'\\n    at handler (/app/server/"
    "routes/' || m.route || E'.ts:' || (20 + mod(g, 180)) || E':17)\\n    at async withRetry "
    "(/app/server/lib/retry.ts:' || (10 + mod(g, 40)) || E':12)' END"
)

# Parents before children is not needed (the foreign keys come back after the rows), but each
# child's ids are the md5 of its parent's number, exactly as demo/sample.py derives them.
_INSERTS: dict[str, LiteralString] = {
    "users": """
        INSERT INTO users (id, email, name, avatar_url, role, credits, created_at, updated_at)
        SELECT md5('users:' || g)::uuid, 'artist' || g || '@assetforge.test', 'Artist ' || g,
               'https://cdn.assetforge.test/avatars/' || g || '.png',
               (CASE WHEN mod(g, 25) = 0 THEN 'admin' ELSE 'member' END)::user_role,
               mod(g::bigint * 37, 500), ts, ts + interval '3 days'
        FROM generate_series(1, %(n)s) AS g,
             LATERAL (SELECT timestamptz '2025-03-01 00:00+00' + g * interval '7 minutes') AS t(ts)
    """,
    "projects": """
        INSERT INTO projects (id, owner_id, name, description, is_archived, created_at,
                              updated_at)
        SELECT md5('projects:' || g)::uuid, md5('users:' || (mod(g - 1, %(users)s) + 1))::uuid,
               'Project ' || g, 'Assets for world ' || mod(g, 12), mod(g, 9) = 0,
               ts, ts + interval '9 days'
        FROM generate_series(1, %(n)s) AS g,
             LATERAL (SELECT timestamptz '2025-04-01 00:00+00' + g * interval '11 minutes') AS t(ts)
    """,
    "sessions": """
        INSERT INTO sessions (id, user_id, token_hash, user_agent, expires_at, created_at)
        SELECT md5('sessions:' || g)::uuid,
               md5('users:' || (mod(g::bigint * 7 - 1, %(users)s) + 1))::uuid, md5('token:' || g),
               (ARRAY['Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15',
                      'curl/8.5.0', 'AssetForge/2.3 (Windows NT 10.0; Win64; x64)'])[mod(g, 3) + 1],
               timestamptz '2025-11-01 00:00+00' + g * interval '5 minutes',
               timestamptz '2025-10-01 00:00+00' + g * interval '5 minutes'
        FROM generate_series(1, %(n)s) AS g
    """,
    "assets": """
        INSERT INTO assets (id, owner_id, project_id, name, description, type, status, model_url,
                            thumbnail_url, metadata, created_at, updated_at)
        SELECT md5('assets:' || g)::uuid, md5('users:' || (mod(g - 1, %(users)s) + 1))::uuid,
               CASE WHEN mod(g, 5) = 0 THEN NULL
                    ELSE md5('projects:' || (mod(g - 1, %(projects)s) + 1))::uuid END,
               'Asset ' || g, 'A game-ready model, batch ' || mod(g, 97),
               (ARRAY['character', 'prop', 'environment', 'weapon', 'vehicle'])[mod(g, 5) + 1],
               (ARRAY['draft', 'processing', 'ready', 'ready', 'failed'])[mod(g, 5) + 1],
               'https://cdn.assetforge.test/models/' || g || '.glb',
               'https://cdn.assetforge.test/thumbs/' || g || '.png',
               jsonb_build_object('polycount', 1000 + mod(g::bigint * 131, 50000),
                                  'rigged', mod(g, 3) = 0,
                                  'materials', mod(g, 7) + 1),
               ts, ts + interval '5 hours'
        FROM generate_series(1, %(n)s) AS g,
             LATERAL (SELECT timestamptz '2025-05-01 00:00+00' + g * interval '31 minutes') AS t(ts)
    """,
    "generation_pipelines": """
        INSERT INTO generation_pipelines (id, user_id, asset_id, status, prompt, config,
            current_stage, progress, meshy_task_id, error_message, result, started_at,
            completed_at, expires_at, created_at, updated_at)
        SELECT md5('pipelines:' || g)::uuid, md5('users:' || (mod(g - 1, %(users)s) + 1))::uuid,
               CASE WHEN mod(g, 10) = 0 THEN NULL
                    ELSE md5('assets:' || (mod(g - 1, %(assets)s) + 1))::uuid END,
               (enum_range(NULL::pipeline_status))[mod(g, 6) + 1],
               'A low-poly ' || (ARRAY['knight', 'crate', 'castle', 'sword', 'hover bike'])
                   [mod(g, 5) + 1] || ' with hand-painted textures, variation ' || g,
               jsonb_build_object('quality', (ARRAY['draft', 'standard', 'high'])[mod(g, 3) + 1],
                                  'topology', 'quad', 'target_polycount', 5000 + mod(g, 30000)),
               'mesh_generation', mod(g::bigint * 17, 101), 'meshy-' || md5('meshy:' || g),
               CASE WHEN mod(g, 6) = 4 THEN 'Meshy returned 502 after 3 retries' END,
               CASE WHEN mod(g, 6) = 3 THEN jsonb_build_object(
                   'model_url', 'https://cdn.assetforge.test/models/p' || g || '.glb',
                   'duration_ms', 30000 + mod(g::bigint * 7, 90000)) END,
               ts + interval '1 minute', ts + interval '12 minutes', ts + interval '7 days', ts,
               ts + interval '12 minutes'
        FROM generate_series(1, %(n)s) AS g,
             LATERAL (SELECT timestamptz '2025-06-01 00:00+00' + g * interval '2 minutes') AS t(ts)
    """,
    "pipeline_stages": """
        INSERT INTO pipeline_stages (id, pipeline_id, stage_name, stage_order, status, progress,
                                     input, output, started_at, completed_at, created_at)
        SELECT md5('stages:' || p || ':' || s)::uuid, md5('pipelines:' || p)::uuid,
               (ARRAY['prompt_enhancement', 'image_generation', 'mesh_generation', 'retexture'])[s],
               s, (enum_range(NULL::stage_status))[mod(p + s, 5) + 1], mod(p::bigint * s * 13, 101),
               CASE WHEN s = 1 THEN jsonb_build_object('seed', mod(p::bigint * 7919, 100000)) END,
               CASE WHEN mod(p + s, 5) = 2
                    THEN jsonb_build_object('ms', mod(p::bigint * s, 60000)) END,
               ts, ts + interval '2 minutes', ts
        FROM generate_series(1, %(pipelines)s) AS p, generate_series(1, %(stages)s) AS s,
             LATERAL (SELECT timestamptz '2025-06-01 00:00+00' + p * interval '2 minutes'
                                 + s * interval '1 minute') AS t(ts)
    """,
    "asset_variants": """
        INSERT INTO asset_variants (id, base_asset_id, variant_asset_id, owner_id, preset_id,
            variant_name, variant_order, status, retexture_task_id, material_overrides,
            credits_used, created_at, updated_at)
        SELECT md5('variants:' || g)::uuid, md5('assets:' || b)::uuid,
               md5('assets:' || (mod(g::bigint * 13, %(assets)s) + 1))::uuid,
               md5('users:' || (mod(b - 1, %(users)s) + 1))::uuid,
               (ARRAY['pbr-metal', 'stylized', 'weathered', NULL])[mod(g, 4) + 1],
               'Variant ' || g, (g - 1) / %(bases)s,
               (ARRAY['pending', 'processing', 'completed', 'completed', 'failed'])[mod(g, 5) + 1],
               'retex-' || md5('retexture:' || g),
               jsonb_build_object('roughness', mod(g, 100) / 100.0, 'tint', '#' || lpad(
                   to_hex(mod(g::bigint * 2654435761, 16777216)), 6, '0')),
               5 + mod(g, 20), ts, ts + interval '4 minutes'
        FROM generate_series(1, %(n)s) AS g,
             LATERAL (SELECT mod(g - 1, %(bases)s) + 1,
                             timestamptz '2025-06-08 00:00+00' + g * interval '2 minutes')
                  AS v(b, ts)
    """,
    "variant_statistics": """
        INSERT INTO variant_statistics (id, base_asset_id, total_variants, completed_variants,
            failed_variants, total_credits_used, avg_generation_ms, last_variant_at, updated_at)
        SELECT md5('stats:' || base_asset_id)::uuid, base_asset_id, count(*),
               count(*) FILTER (WHERE status = 'completed'),
               count(*) FILTER (WHERE status = 'failed'), sum(credits_used), 42000,
               max(created_at), max(updated_at)
        FROM asset_variants GROUP BY base_asset_id
    """,
    "api_errors": f"""
        INSERT INTO api_errors (id, user_id, request_id, endpoint, method, status_code, severity,
            category, error_code, message, stack, context, external_service, resolved,
            resolved_at, resolved_by, created_at)
        SELECT md5('errors:' || g)::uuid,
               CASE WHEN mod(g, 7) = 0 THEN NULL
                    ELSE md5('users:' || (mod(g::bigint * 3 - 1, %(users)s) + 1))::uuid END,
               'req_' || md5('request:' || g), '/api/' || m.route,
               (ARRAY['GET', 'POST', 'PATCH', 'DELETE'])[mod(g, 4) + 1],
               (ARRAY[400, 401, 403, 404, 429, 500, 502, 503])[mod(g, 8) + 1],
               (enum_range(NULL::error_severity))[mod(g, 5) + 1],
               (enum_range(NULL::error_category))[mod(g, 9) + 1],
               'E' || (1000 + mod(g, 40)), m.message, {_STACK},
               CASE WHEN mod(g, 4) = 1 THEN jsonb_build_object('attempt', 1 + mod(g, 3)) END,
               (ARRAY['meshy', 'openai', NULL])[mod(g, 3) + 1], resolved,
               CASE WHEN resolved THEN ts + interval '2 hours' END,
               CASE WHEN resolved THEN md5('users:' || (mod(g, %(users)s) + 1))::uuid END, ts
        FROM generate_series(1, %(n)s) AS g,
             LATERAL (SELECT mod(g, 4) = 0,
                             timestamptz '2025-06-01 00:00+00' + g * interval '15 seconds')
                  AS t(resolved, ts),
             LATERAL (SELECT (ARRAY['generate', 'retexture', 'assets', 'variants',
                                    'auth/session', 'pipelines'])[mod(g, 6) + 1],
                             'Request failed: case ' || g) AS m(route, message)
    """,
    "error_aggregations": """
        INSERT INTO error_aggregations (id, hour_bucket, endpoint, severity, category,
            external_service, error_count, unique_users, first_seen, last_seen, resolved,
            resolved_by, created_at, updated_at)
        SELECT md5('aggregations:' || g)::uuid, bucket,
               (ARRAY['/api/generate', '/api/retexture', '/api/assets', '/api/variants'])
                   [mod(g, 4) + 1],
               (enum_range(NULL::error_severity))[mod(g, 5) + 1],
               (enum_range(NULL::error_category))[mod(g, 9) + 1],
               (ARRAY['meshy', 'openai', NULL])[mod(g, 3) + 1], 1 + mod(g::bigint * 7, 60),
               1 + mod(g, 12), bucket + interval '2 minutes', bucket + interval '58 minutes',
               mod(g, 6) = 0,
               CASE WHEN mod(g, 6) = 0 THEN md5('users:' || (mod(g, %(users)s) + 1))::uuid END,
               bucket + interval '1 hour', bucket + interval '1 hour'
        FROM generate_series(1, %(n)s) AS g,
             LATERAL (SELECT timestamptz '2025-06-01 00:00+00' + (g - 1) / 4 * interval '1 hour')
                  AS t(bucket)
    """,
}

# Two loaders, one per core, with about the same work each: the error log alone on one.
_LANES: tuple[tuple[str, ...], ...] = (
    ("api_errors",),
    (
        "pipeline_stages",
        "generation_pipelines",
        "asset_variants",
        "variant_statistics",  # computed from asset_variants, so after it on the same lane
        "error_aggregations",
        "assets",
        "sessions",
        "users",
        "projects",
    ),
)


def rows_at(scale: float) -> dict[str, int]:
    """The rows each table holds at `scale`; never fewer than one, stages four per pipeline."""
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale:g}")
    rows = {table: max(1, round(n * scale)) for table, n in ROWS_AT_SCALE_1.items()}
    rows["pipeline_stages"] = rows["generation_pipelines"] * STAGES_PER_PIPELINE
    rows["variant_statistics"] = min(rows["variant_statistics"], rows["assets"])
    return rows


def dropped_rows(scale: float) -> int:
    """Rows in the six tables the seed's rollback drops, at `scale`."""
    rows = rows_at(scale)
    return sum(rows[table] for table in MIGRATION_0023_TABLES)


@dataclass(frozen=True)
class Built:
    """A filled database and what it took to fill it."""

    name: str
    rows: dict[str, int]
    database_bytes: int
    build_s: float


@dataclass(frozen=True)
class _Definition:
    """An index or constraint set aside while the rows go in, and the DDL that restores it."""

    table: str
    name: str
    kind: str  # "p"/"u" constraint, "i" index, "f" foreign key: the order they come back in
    ddl: str


def _definitions(conn: psycopg.Connection[Any]) -> list[_Definition]:
    """Every constraint and index on the public tables, as the catalog renders it."""
    constraints = conn.execute(
        """
        SELECT c.conrelid::regclass::text, c.conname, c.contype,
               pg_get_constraintdef(c.oid)
        FROM pg_constraint AS c JOIN pg_class AS t ON t.oid = c.conrelid
        JOIN pg_namespace AS n ON n.oid = t.relnamespace
        WHERE n.nspname = 'public' AND c.contype IN ('p', 'u', 'f')
        ORDER BY c.conrelid::regclass::text, c.conname
        """
    ).fetchall()
    indexes = conn.execute(
        """
        SELECT i.indrelid::regclass::text, x.relname, pg_get_indexdef(i.indexrelid)
        FROM pg_index AS i JOIN pg_class AS x ON x.oid = i.indexrelid
        JOIN pg_namespace AS n ON n.oid = x.relnamespace
        WHERE n.nspname = 'public'
          AND NOT EXISTS (SELECT FROM pg_constraint AS c WHERE c.conindid = i.indexrelid)
        ORDER BY 1, 2
        """
    ).fetchall()
    found = [
        _Definition(
            str(table),
            str(name),
            str(kind),
            f"ALTER TABLE {table} ADD CONSTRAINT {sql.Identifier(name).as_string(conn)} {ddl}",
        )
        for table, name, kind, ddl in constraints
    ]
    found += [_Definition(str(table), str(name), "i", str(ddl)) for table, name, ddl in indexes]
    return found


def _set_aside(conn: psycopg.Connection[Any], definitions: list[_Definition]) -> None:
    """Drop the foreign keys, then the indexes, then the keys, so the rows go in unchecked."""
    for kind in ("f", "i", "u", "p"):
        for d in definitions:
            if d.kind != kind:
                continue
            name = sql.Identifier(d.name)
            if kind == "i":
                conn.execute(sql.SQL("DROP INDEX public.{}").format(name))
            else:
                table = sql.SQL(d.table)  # regclass text: already quoted where it needs to be
                conn.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(table, name))


def build_scaled(conninfo: str, scale: float) -> dict[str, int]:
    """Turn an empty database into asset_forge at 0023 with `rows_at(scale)`; return them."""
    rows = rows_at(scale)
    params = {
        "users": rows["users"],
        "projects": rows["projects"],
        "assets": rows["assets"],
        "pipelines": rows["generation_pipelines"],
        "stages": STAGES_PER_PIPELINE,
        "bases": rows["variant_statistics"],
    }
    with psycopg.connect(conninfo) as conn:
        apply_migrations(conn, upto="0023")
        conn.commit()
        definitions = _definitions(conn)
        _set_aside(conn, definitions)
        conn.commit()

    def load(tables: tuple[str, ...]) -> None:
        with psycopg.connect(conninfo) as conn:
            for table in tables:
                statement = _INSERTS[table]
                conn.execute(statement, {**params, "n": rows[table]})
                conn.commit()

    def restore(ddls: tuple[str, ...]) -> None:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f"SET maintenance_work_mem = '{MAINTENANCE_WORK_MEM}'")
            for ddl in ddls:
                conn.execute(ddl.encode())

    _two_lanes(load, [list(lane) for lane in _LANES])
    # Keys before the indexes and the foreign keys that need them; within each kind, the
    # definitions are dealt to the two lanes largest table first.
    for kinds in (("p", "u"), ("i",), ("f",)):
        ddls = sorted(
            (d for d in definitions if d.kind in kinds),
            key=lambda d: -rows.get(d.table.removeprefix("public."), 0),
        )
        _two_lanes(restore, [[d.ddl for d in ddls[0::2]], [d.ddl for d in ddls[1::2]]])
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")
    return rows


def _two_lanes(work: Callable[[Any], None], lanes: list[list[Any]]) -> None:
    """Run `work` on each lane at once, one connection each; the first failure is raised."""
    with ThreadPoolExecutor(max_workers=len(lanes), thread_name_prefix="bench-load") as pool:
        for future in [pool.submit(work, tuple(lane)) for lane in lanes if lane]:
            future.result()


@contextmanager
def scaled_template(server: Server, scale: float) -> Iterator[Built]:
    """A database `bench_af…` filled at `scale`, to clone; dropped when the block ends."""
    label = f"{scale:g}".replace(".", "_")
    name = server.create(f"bench_af{label}")
    try:
        began = time.monotonic()
        conninfo = server.database(name)
        rows = build_scaled(conninfo, scale)
        elapsed = time.monotonic() - began
        with psycopg.connect(conninfo) as conn:
            row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        yield Built(name, rows, int(row[0]) if row else 0, elapsed)
    finally:
        with contextlib.suppress(psycopg.Error):
            server.drop(name)
