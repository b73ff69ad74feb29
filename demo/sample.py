"""The asset_forge database before and after migration 0023, with believable data in it.

Rolling back 0023 is only convincing against a database that looks like production: the
tables the seed runbook drops, their neighbours that must survive, foreign keys into them,
and enough rows that a backup and a restore have something to prove. Every row is derived
from `generate_series`, so two builds at the same scale hold identical data and the counts are
known in advance; identifiers are md5-derived uuids, so references need no lookups.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, LiteralString

import psycopg

from bot.drizzle import folder as drizzle
from bot.target.migrator import migrate

MIGRATIONS_DIR: Path = Path(__file__).parent / "fixtures" / "asset_forge"

BASELINE_TABLES = ("users", "projects", "sessions", "assets")
MIGRATION_0023_TABLES = (
    "generation_pipelines",
    "pipeline_stages",
    "asset_variants",
    "variant_statistics",
    "api_errors",
    "error_aggregations",
)

# Rows per table at scale 1. All different, so a count identifies its table in a failure.
ROWS_AT_SCALE_1: dict[str, int] = {
    "users": 200,
    "projects": 150,
    "sessions": 600,
    "assets": 1200,
    "generation_pipelines": 500,
    "pipeline_stages": 2000,  # four stages per pipeline
    "asset_variants": 450,
    "variant_statistics": 120,  # one per base asset that has variants
    "api_errors": 900,
    "error_aggregations": 336,  # two endpoints per hour for a week
}

STAGES_PER_PIPELINE = 4
BASE_ASSETS_AT_SCALE_1 = ROWS_AT_SCALE_1["variant_statistics"]

# Parents before children, so every foreign key holds while the rows go in.
_INSERTS: dict[str, LiteralString] = {
    "users": """
        INSERT INTO users (id, email, name, role, credits, created_at, updated_at)
        SELECT md5('users:' || g)::uuid, 'artist' || g || '@assetforge.test', 'Artist ' || g,
               (CASE WHEN mod(g, 25) = 0 THEN 'admin' ELSE 'member' END)::user_role,
               mod(g * 37, 500), ts, ts + interval '3 days'
        FROM generate_series(1, %(n)s) AS g,
             LATERAL (SELECT timestamptz '2025-03-01 00:00+00' + g * interval '7 hours') AS t(ts)
    """,
    "projects": """
        INSERT INTO projects (id, owner_id, name, description, is_archived, created_at,
                              updated_at)
        SELECT md5('projects:' || g)::uuid, md5('users:' || (mod(g - 1, %(users)s) + 1))::uuid,
               'Project ' || g, 'Assets for world ' || mod(g, 12), mod(g, 9) = 0,
               ts, ts + interval '9 days'
        FROM generate_series(1, %(n)s) AS g,
             LATERAL (SELECT timestamptz '2025-04-01 00:00+00' + g * interval '11 hours') AS t(ts)
    """,
    "sessions": """
        INSERT INTO sessions (id, user_id, token_hash, user_agent, expires_at, created_at)
        SELECT md5('sessions:' || g)::uuid,
               md5('users:' || (mod(g * 7 - 1, %(users)s) + 1))::uuid, md5('token:' || g),
               (ARRAY['Mozilla/5.0', 'curl/8.5', 'AssetForge/2.3'])[mod(g, 3) + 1],
               timestamptz '2025-11-01 00:00+00' + g * interval '1 hour',
               timestamptz '2025-10-01 00:00+00' + g * interval '1 hour'
        FROM generate_series(1, %(n)s) AS g
    """,
    "assets": """
        INSERT INTO assets (id, owner_id, project_id, name, type, status, model_url,
                            thumbnail_url, metadata, created_at, updated_at)
        SELECT md5('assets:' || g)::uuid, md5('users:' || (mod(g - 1, %(users)s) + 1))::uuid,
               CASE WHEN mod(g, 5) = 0 THEN NULL
                    ELSE md5('projects:' || (mod(g - 1, %(projects)s) + 1))::uuid END,
               'Asset ' || g,
               (ARRAY['character', 'prop', 'environment', 'weapon', 'vehicle'])[mod(g, 5) + 1],
               (ARRAY['draft', 'processing', 'ready', 'ready', 'failed'])[mod(g, 5) + 1],
               'https://cdn.assetforge.test/models/' || g || '.glb',
               'https://cdn.assetforge.test/thumbs/' || g || '.png',
               jsonb_build_object('polycount', 1000 + mod(g * 131, 50000), 'rigged', mod(g, 3) = 0),
               ts, ts + interval '5 hours'
        FROM generate_series(1, %(n)s) AS g,
             LATERAL (SELECT timestamptz '2025-05-01 00:00+00' + g * interval '3 hours') AS t(ts)
    """,
    "generation_pipelines": """
        INSERT INTO generation_pipelines (id, user_id, asset_id, status, prompt, config,
            current_stage, progress, meshy_task_id, started_at, expires_at, created_at,
            updated_at)
        SELECT md5('pipelines:' || g)::uuid, md5('users:' || (mod(g - 1, %(users)s) + 1))::uuid,
               CASE WHEN mod(g, 10) = 0 THEN NULL ELSE md5('assets:' || g)::uuid END,
               (enum_range(NULL::pipeline_status))[mod(g, 6) + 1],
               'A low-poly asset number ' || g,
               jsonb_build_object('quality', (ARRAY['draft', 'standard', 'high'])[mod(g, 3) + 1]),
               'mesh_generation', mod(g * 17, 101), 'meshy-' || md5('meshy:' || g),
               ts + interval '1 minute', ts + interval '7 days', ts, ts + interval '9 minutes'
        FROM generate_series(1, %(n)s) AS g,
             LATERAL (SELECT timestamptz '2025-11-06 00:00+00' + g * interval '15 minutes') AS t(ts)
    """,
    "pipeline_stages": """
        INSERT INTO pipeline_stages (id, pipeline_id, stage_name, stage_order, status, progress,
                                     created_at)
        SELECT md5('stages:' || p || ':' || s)::uuid, md5('pipelines:' || p)::uuid,
               (ARRAY['prompt_enhancement', 'image_generation', 'mesh_generation', 'retexture'])[s],
               s, (enum_range(NULL::stage_status))[mod(p + s, 5) + 1], mod(p * s * 13, 101),
               timestamptz '2025-11-06 00:00+00' + p * interval '15 minutes'
                   + s * interval '1 minute'
        FROM generate_series(1, %(pipelines)s) AS p, generate_series(1, %(stages)s) AS s
    """,
    "asset_variants": """
        INSERT INTO asset_variants (id, base_asset_id, variant_asset_id, owner_id, preset_id,
            variant_name, variant_order, status, retexture_task_id, credits_used, created_at,
            updated_at)
        SELECT md5('variants:' || g)::uuid, md5('assets:' || b)::uuid,
               md5('assets:' || (%(bases)s + g))::uuid,
               md5('users:' || (mod(b - 1, %(users)s) + 1))::uuid,
               (ARRAY['pbr-metal', 'stylized', 'weathered', NULL])[mod(g, 4) + 1],
               'Variant ' || g, (g - 1) / %(bases)s,
               (ARRAY['pending', 'processing', 'completed', 'completed', 'failed'])[mod(g, 5) + 1],
               'retex-' || md5('retexture:' || g), 5 + mod(g, 20), ts, ts + interval '4 minutes'
        FROM generate_series(1, %(n)s) AS g,
             LATERAL (SELECT mod(g - 1, %(bases)s) + 1,
                             timestamptz '2025-11-08 00:00+00' + g * interval '13 minutes')
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
    "api_errors": """
        INSERT INTO api_errors (id, user_id, request_id, endpoint, method, status_code, severity,
            category, error_code, message, external_service, resolved, resolved_at, resolved_by,
            created_at)
        SELECT md5('errors:' || g)::uuid,
               CASE WHEN mod(g, 7) = 0 THEN NULL
                    ELSE md5('users:' || (mod(g * 3 - 1, %(users)s) + 1))::uuid END,
               'req_' || md5('request:' || g),
               (ARRAY['/api/generate', '/api/retexture', '/api/assets', '/api/variants',
                      '/api/auth/session', '/api/pipelines'])[mod(g, 6) + 1],
               (ARRAY['GET', 'POST', 'PATCH', 'DELETE'])[mod(g, 4) + 1],
               (ARRAY[400, 401, 403, 404, 429, 500, 502, 503])[mod(g, 8) + 1],
               (enum_range(NULL::error_severity))[mod(g, 5) + 1],
               (enum_range(NULL::error_category))[mod(g, 9) + 1],
               'E' || (1000 + mod(g, 40)), 'Request failed: case ' || g,
               (ARRAY['meshy', 'openai', NULL])[mod(g, 3) + 1], resolved,
               CASE WHEN resolved THEN ts + interval '2 hours' END,
               CASE WHEN resolved THEN md5('users:' || (mod(g, 8) + 1) * 25)::uuid END, ts
        FROM generate_series(1, %(n)s) AS g,
             LATERAL (SELECT mod(g, 4) = 0,
                             timestamptz '2025-11-06 00:00+00' + g * interval '11 minutes')
                  AS t(resolved, ts)
    """,
    "error_aggregations": """
        INSERT INTO error_aggregations (id, hour_bucket, endpoint, severity, category,
            external_service, error_count, unique_users, first_seen, last_seen, resolved,
            resolved_by, created_at, updated_at)
        SELECT md5('aggregations:' || g)::uuid, bucket,
               (ARRAY['/api/generate', '/api/retexture'])[mod(g, 2) + 1],
               (enum_range(NULL::error_severity))[mod(g, 5) + 1],
               (enum_range(NULL::error_category))[mod(g, 9) + 1],
               (ARRAY['meshy', 'openai', NULL])[mod(g, 3) + 1], 1 + mod(g * 7, 60),
               1 + mod(g, 12), bucket + interval '2 minutes', bucket + interval '58 minutes',
               mod(g, 6) = 0, CASE WHEN mod(g, 6) = 0 THEN md5('users:25')::uuid END,
               bucket + interval '1 hour', bucket + interval '1 hour'
        FROM generate_series(1, %(n)s) AS g,
             LATERAL (SELECT timestamptz '2025-11-06 00:00+00' + (g - 1) / 2 * interval '1 hour')
                  AS t(bucket)
    """,
}


def expected_rows(*, scale: int = 1, tables: tuple[str, ...] | None = None) -> dict[str, int]:
    """The counts `insert_sample_rows` promises, for tests that must not trust its answer."""
    names = tables if tables is not None else tuple(ROWS_AT_SCALE_1)
    return {name: ROWS_AT_SCALE_1[name] * scale for name in names}


def apply_migrations(conn: psycopg.Connection[Any], *, upto: str = "0023") -> list[str]:
    """Migrate the packaged asset_forge folder exactly as Drizzle would; return tags applied.

    `upto="0022"` gives the database as it stood before 0023, i.e. after a clean rollback.
    """
    migrations = drizzle.select_upto(drizzle.read_migrations(MIGRATIONS_DIR), upto)
    return migrate(conn, migrations)


def _existing_tables(conn: psycopg.Connection[Any]) -> set[str]:
    rows = conn.execute(
        "SELECT c.relname FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname = ANY(%s)",
        (list(ROWS_AT_SCALE_1),),
    ).fetchall()
    return {str(row[0]) for row in rows}


def insert_sample_rows(conn: psycopg.Connection[Any], *, scale: int = 1) -> dict[str, int]:
    """Fill whichever asset_forge tables exist; return the rows inserted per table.

    Only tables that exist are filled, so the same call serves a database at 0022 and one at
    0023. The tables must be empty: the ids are fixed, so a second call collides with the first.
    Only numbers travel as parameters; the statements are this module's constants.
    """
    if scale < 1:
        raise ValueError("scale must be at least 1")
    sizes = expected_rows(scale=scale)
    params = {
        "users": sizes["users"],
        "projects": sizes["projects"],
        "pipelines": sizes["generation_pipelines"],
        "stages": STAGES_PER_PIPELINE,
        "bases": BASE_ASSETS_AT_SCALE_1 * scale,
    }
    present = _existing_tables(conn)
    inserted: dict[str, int] = {}
    with conn.transaction():
        for table, statement in _INSERTS.items():
            if table not in present:
                continue
            cursor = conn.execute(statement, {**params, "n": sizes[table]})
            inserted[table] = cursor.rowcount
    return inserted


def build_asset_forge(conninfo: str, *, upto: str = "0023", scale: int = 1) -> dict[str, int]:
    """Turn an empty database into asset_forge at `upto`, with sample rows; return the counts."""
    with psycopg.connect(conninfo) as conn:
        apply_migrations(conn, upto=upto)
        counts = insert_sample_rows(conn, scale=scale)
        conn.commit()
    return counts
