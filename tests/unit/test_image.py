"""The Docker image, read from the Dockerfile and .dockerignore; its health check, run for real."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pytest

from tests.dockerfile import (
    DOCKERFILE,
    context_sources,
    expand,
    ignore_patterns,
    ignored,
    load,
    parse,
)

if TYPE_CHECKING:
    from collections.abc import Iterator


def test_reader_reads_dockerfiles_as_docker_does() -> None:
    """The tests' reader joins continued lines around comments, scopes ARGs and splits stages."""
    text = (
        "# syntax=docker/dockerfile:1\n"
        "ARG V=3\n"
        "FROM img:${V} AS one\n"
        "RUN a \\\n"
        "    # a comment inside the continuation\n"
        "    && b\n"
        "\n"
        "FROM one\n"
        'ENV A=x B="${A}/y $V"\n'
    )
    parsed = parse(text)
    assert parsed.args == {"V": "3"}
    assert [(s.base, s.name) for s in parsed.stages] == [("img:3", "one"), ("one", None)]
    assert parsed.stage("one").last("RUN").value == "a && b"
    assert parsed.final.env({}) == {"A": "x", "B": "x/y $V"}
    assert expand("${E:-d}|${E:+w}|${F:+w}|${F:-d}|${G:-d}", {"E": "", "F": "x"}) == (
        "d||w|x|${G:-d}"
    )
    assert ignored("bot/x.py", ["*", "!bot/"]) is False
    assert ignored("bot/__pycache__/x.pyc", ["*", "!bot/", "**/__pycache__"]) is True
    assert ignored(".env", ["*", "!bot/"]) is True


def test_image_is_built_in_stages_and_ships_no_toolchain() -> None:
    """The runtime stage starts from the builder's Python image and takes only its virtualenv."""
    dockerfile = load()
    builder, runtime = dockerfile.stage("builder"), dockerfile.final
    assert len(dockerfile.stages) >= 2
    assert runtime.base == builder.base
    assert runtime.base.startswith("python:3.1")
    assert runtime.base.endswith("-slim-bookworm")
    from_builder = [c.value for c in runtime.all("COPY") if c.flags()[0].get("from") == "builder"]
    assert from_builder == ["--from=builder /opt/venv /opt/venv"]
    assert "/opt/venv/bin" in runtime.env(dockerfile.args)["PATH"].split(":")
    runtime_runs = " ".join(run.value for run in runtime.all("RUN"))
    for toolchain in ("gcc", "build-essential", "-dev ", "pip install"):
        assert toolchain not in runtime_runs


def test_builder_installs_a_wheel_without_extras() -> None:
    """The builder installs a wheel plainly (not editable, no extras) into a venv without pip."""
    builder = load().stage("builder")
    (install,) = [run.value for run in builder.all("RUN") if "pip wheel" in run.value]
    assert "--no-deps" in install
    assert (
        "python -m pip --python /opt/venv/bin/python install /tmp/wheels/rollbot-*.whl" in install
    )
    assert "python -m venv --without-pip /opt/venv" in [run.value for run in builder.all("RUN")]
    assert "[" not in install
    assert " -e " not in install


def test_runtime_has_postgresql_18_client_from_pgdg() -> None:
    """postgresql-client-18 comes from apt.postgresql.org, signed, and ROLLBOT_PG_BIN names it."""
    dockerfile = load()
    runtime = dockerfile.final
    runs = [expand(run.value, dockerfile.args) for run in runtime.all("RUN")]
    (install,) = [run for run in runs if "postgresql-client-" in run]
    assert dockerfile.args["PG_MAJOR"] == "18"
    assert "apt-get install -y --no-install-recommends postgresql-client-18" in install.replace(
        '"', ""
    )
    assert "https://apt.postgresql.org/pub/repos/apt" in install
    assert "Signed-By: /usr/share/keyrings/pgdg.asc" in install
    assert "rm -rf /var/lib/apt/lists/*" in install
    assert "apt-key" not in install
    key = [c.value for c in runtime.all("COPY") if c.flags()[0].get("from") == "pgdg-key"]
    assert key == ["--from=pgdg-key /out/pgdg.asc /usr/share/keyrings/pgdg.asc"]
    pg_bin = runtime.env(dockerfile.args)["ROLLBOT_PG_BIN"]
    assert pg_bin == "/usr/lib/postgresql/18/bin"
    # The build fails unless both tools run from the directory ROLLBOT_PG_BIN names.
    assert f'"{pg_bin}/pg_dump" --version' in install
    assert f'"{pg_bin}/pg_restore" --version' in install


def test_pgdg_key_is_pinned_to_its_fingerprint() -> None:
    """The signing key is checked against PGDG's published fingerprint before it is trusted."""
    key_stage = load().stage("pgdg-key")
    (fingerprint,) = [a.value for a in key_stage.all("ARG") if a.value.startswith("PGDG_KEY")]
    assert fingerprint.endswith("=B97B0AFCAA1A47F044F244A07FCC7D46ACCC4CF8")
    (run,) = key_stage.all("RUN")
    assert 'test "$found" = "$PGDG_KEY_FINGERPRINT"' in run.value
    assert key_stage.last("SHELL").exec_form()[:3] == ["/bin/bash", "-o", "pipefail"]


def test_runtime_runs_rollbot_serve_as_a_fixed_non_root_user() -> None:
    """USER is a fixed non-root UID set before CMD, and CMD is `rollbot serve` in exec form."""
    runtime = load().final
    keywords = [i.keyword for i in runtime.instructions]
    assert "ENTRYPOINT" not in keywords
    assert keywords.index("USER") < keywords.index("CMD")
    assert keywords.count("USER") == 1
    user = runtime.last("USER").value
    assert user == "10001:10001"
    assert runtime.last("CMD").exec_form() == ["rollbot", "serve"]
    assert runtime.last("STOPSIGNAL").value == "SIGTERM"
    assert runtime.last("WORKDIR").value == "/app"


def test_runtime_layout_and_environment() -> None:
    """Runbooks in /app/runbooks, a private backup volume owned by the user, port 3000."""
    dockerfile = load()
    runtime = dockerfile.final
    env = runtime.env(dockerfile.args)
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PORT"] == "3000"
    assert env["ROLLBOT_RUNBOOKS_DIR"] == "/app/runbooks"
    assert env["ROLLBOT_BACKUP_DIR"] == "/app/backups"
    assert runtime.last("EXPOSE").value == "3000"
    assert runtime.last("VOLUME").exec_form() == ["/app/backups"]
    runs = [run.value for run in runtime.all("RUN")]
    assert "install -d -o 10001 -g 10001 -m 0700 /app/backups" in runs
    assert any(c.value == "runbooks/ /app/runbooks/" for c in runtime.all("COPY"))


def test_build_context_holds_what_the_dockerfile_copies_and_no_secrets() -> None:
    """Every COPY source is in the build context; .env, .git, .venv, backups, tests, demo: not."""
    patterns = ignore_patterns()
    sources = context_sources(load())
    assert sources
    for source in sources:
        assert not ignored(source.rstrip("/"), patterns), source
    for path in ("bot/cli.py", "bot/slack/listeners/__init__.py", "runbooks/0023_loud_shen.md"):
        assert not ignored(path, patterns), path
    for path in (
        ".env",
        ".git/config",
        ".venv/bin/python",
        "backups/run-1.dump",
        "tests/conftest.py",
        "demo/standin/server.py",
        "demo/fixtures/asset_forge/0023_loud_shen.sql",
        "bot/__pycache__/cli.cpython-311.pyc",
    ):
        assert ignored(path, patterns), path


def test_dockerfile_passes_hadolint() -> None:
    """Hadolint passes: every rule the Dockerfile departs from is waived inline, saying why."""
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint is a dev dependency: make .venv/.installed-stamp"
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _migrations_step(build_arg: str, source: Path, target: Path) -> tuple[str, str, int, str]:
    """The runtime's migrations step for a build argument, its script run for real.

    Returns its mount's source, the ENV it sets, and the script's exit code and stderr when
    it reads `source` and writes `target`.
    """
    dockerfile = load()
    runtime = dockerfile.final
    (arg,) = [a.value for a in runtime.all("ARG") if a.value.startswith("MIGRATIONS_DIR")]
    assert arg == 'MIGRATIONS_DIR=""'
    args = {**dockerfile.args, "MIGRATIONS_DIR": build_arg}
    (step,) = [run for run in runtime.all("RUN") if "MIGRATIONS_DIR" in run.value]
    flags, script = step.flags()
    mount = dict(part.split("=", 1) for part in expand(flags["mount"], args).split(","))
    assert mount["type"] == "bind"
    script = script.replace(mount["target"], str(source)).replace("/app/drizzle", str(target))
    done = subprocess.run(
        ["/bin/sh", "-c", script],
        env={"PATH": os.environ.get("PATH", ""), "MIGRATIONS_DIR": build_arg},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    env = runtime.env(args)["ROLLBOT_MIGRATIONS_DIR"]
    return mount["source"], env, done.returncode, done.stderr


def test_migrations_are_baked_in_only_when_a_build_argument_names_them(tmp_path: Path) -> None:
    """Empty MIGRATIONS_DIR copies nothing; named, a Drizzle folder is copied to /app/drizzle."""
    drizzle = tmp_path / "drizzle"
    (drizzle / "meta").mkdir(parents=True)
    (drizzle / "meta" / "_journal.json").write_text('{"entries": []}')
    (drizzle / "0000_init.sql").write_text("CREATE TABLE t (id int);")

    source, env, code, _ = _migrations_step("", drizzle, tmp_path / "none")
    assert (source, env, code) == (".", "", 0)
    assert not (tmp_path / "none").exists()

    baked = tmp_path / "baked"
    source, env, code, _ = _migrations_step("drizzle", drizzle, baked)
    assert (source, env, code) == ("drizzle", "/app/drizzle", 0)
    assert (baked / "meta" / "_journal.json").read_text() == '{"entries": []}'
    assert (baked / "0000_init.sql").stat().st_mode & 0o777 == 0o644
    assert not ignored("drizzle/meta/_journal.json", ignore_patterns())

    (drizzle / "meta" / "_journal.json").unlink()
    _, _, code, stderr = _migrations_step("drizzle", drizzle, tmp_path / "bad")
    assert code != 0
    assert "MIGRATIONS_DIR=drizzle has no meta/_journal.json" in stderr


class _Health(BaseHTTPRequestHandler):
    status: ClassVar[int] = 200

    def do_GET(self) -> None:
        code = self.status if self.path == "/healthz" else 404
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"ok": true}' if code == 200 else b'{"ok": false}')

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        """Keep the test output quiet."""


@pytest.fixture
def health_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    _Health.status = 200


def _healthcheck(port: int) -> int:
    flags, command = load().final.last("HEALTHCHECK").flags()
    assert flags["timeout"] == "5s"
    assert command.startswith("CMD ")
    dead = _free_port()
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PORT": str(port),
        # A proxy that answers nothing: the check must go straight to 127.0.0.1.
        "http_proxy": f"http://127.0.0.1:{dead}",
        "HTTP_PROXY": f"http://127.0.0.1:{dead}",
    }
    shell = ["/bin/sh", "-c", command.removeprefix("CMD ")]
    return subprocess.run(shell, env=env, capture_output=True, timeout=30, check=False).returncode


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_healthcheck_passes_on_200_from_healthz(health_server: ThreadingHTTPServer) -> None:
    """The image's health check exits 0 when /healthz on $PORT answers 200, bypassing proxies."""
    assert _healthcheck(health_server.server_address[1]) == 0


def test_healthcheck_fails_on_503_or_no_answer(health_server: ThreadingHTTPServer) -> None:
    """The health check exits 1 (unhealthy) on a 503 and when nothing listens on $PORT."""
    _Health.status = 503
    assert _healthcheck(health_server.server_address[1]) == 1
    assert _healthcheck(_free_port()) == 1
