"""The README's shell commands, run as written against a fresh sample database.

A reader copies these lines at 3 a.m.; a command that no longer parses, or an example output that
no longer matches, is a trap. So every command of README.md's and runbooks/README.md's `sh`,
`bash` and `console` blocks is either run here, in order, or listed in `NOT_HERE` with why it
cannot run on this machine: a command the test neither runs nor lists fails it.

The `sh` and `bash` blocks are one session, in one directory and on one database, as a reader
would type them. Each `console` block is an example with its output, so it starts afresh: a
clone of the sample at 0023, in a directory of its own holding `drizzle/` and `runbooks/`
(the README's `/srv/rollbot`), with the default `ROLLBOT_BACKUP_DIR` (`./backups`); its
commands run in order, and each one's stdout is compared with the lines the README shows
under it (`tests/readme/examples.py`: varying figures by shape, `…` for lines left out).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from demo.sample import MIGRATIONS_DIR
from tests.readme.examples import matches, normalise

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.fix_db import Role

pytestmark = pytest.mark.readme

ROOT = Path(__file__).resolve().parents[2]
DOCS = (ROOT / "README.md", ROOT / "runbooks" / "README.md")
FENCE = re.compile(r"^( *)```(sh|bash|console)\s*$")

# Commands that cannot run here, by their first words, with the reason.
NOT_HERE: dict[str, str] = {
    "make demo": "builds the venv and runs the whole demo; tests/db/test_demo.py covers it",
    "make test": "the whole suite; CI runs it",
    "make bench": "the benchmark at full scale; `make test-scale` drives it in CI",
    "docker": "needs a Docker engine (none here); tests/unit/test_compose.py checks the files",
    "mkdir -p drizzle": "part of the Docker build-argument recipe (needs ../app and Docker)",
    "python3.11 -m venv /opt/rollbot": "installs system-wide under /opt; test_install.py covers it",
    "/opt/rollbot/bin/": "the system-wide install above",
    "export DATABASE_URL=": "names the reader's server; the test points DATABASE_URL at its sample",
}

# Exit statuses other than 0 that the README's sequence leads to, with why.
EXIT: dict[str, int] = {
    # The example role lacks CREATEDB: doctor reports that error and exits 1, as the README says.
    "ROLLBOT_MIGRATIONS_DIR=./drizzle rollbot doctor": 1,
}

# Where the README's examples run: the reader's directory holding drizzle/ and runbooks/.
EXAMPLE_DIR = "/srv/rollbot"
# The server the Command line section's DATABASE_URL names; the test's server stands in for it.
EXAMPLE_SERVER = "db.internal:5432"


@dataclass(frozen=True)
class Command:
    """One command of a block, with the output the README shows for it (console blocks only)."""

    doc: str
    line: str
    output: tuple[str, ...] | None
    block: int = 0


def _strip_comment(line: str) -> str:
    return re.sub(r"\s+#\s.*$", "", line).rstrip()


def _console(path: Path, block: list[str], number: int) -> list[Command]:
    """`$ ` lines are commands; the lines up to the next one are the output the README shows."""
    found: list[Command] = []
    starts = [j for j, text in enumerate(block) if text.startswith("$ ")]
    for n, j in enumerate(starts):
        end = starts[n + 1] if n + 1 < len(starts) else len(block)
        found.append(Command(path.name, block[j][2:], tuple(block[j + 1 : end]), number))
    return found


def commands(path: Path) -> list[Command]:
    """Every command of the file's sh/bash/console blocks, in order."""
    found: list[Command] = []
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        i += 1
        if not match:
            continue
        indent, kind = len(match.group(1)), match.group(2)
        block: list[str] = []
        while not lines[i].strip().startswith("```"):
            block.append(lines[i][indent:])
            i += 1
        i += 1
        if kind == "console":
            found.extend(_console(path, block, i))
            continue
        pending = ""
        for raw in block:
            text = _strip_comment(raw)
            if not text.strip():
                continue
            if text.endswith("\\"):
                pending += text[:-1].strip() + " "
                continue
            found.append(Command(path.name, pending + text.strip(), None))
            pending = ""
    return found


def _reason(line: str) -> str | None:
    for prefix, reason in NOT_HERE.items():
        if line.startswith(prefix):
            return reason
    return None


def test_every_command_is_run_or_listed() -> None:
    found = [c for path in DOCS for c in commands(path)]
    assert len(found) > 20
    unknown = [
        c.line
        for c in found
        if _reason(c.line) is None and not re.match(r"(export |rollbot |\S+=\S+ )", c.line)
    ]
    assert unknown == [], "commands neither run by this test nor listed in NOT_HERE"


@dataclass
class Example:
    """Where one console block runs: its directory, environment and the values to read back."""

    cwd: Path
    env: dict[str, str]
    stand_ins: dict[str, str]


def _example(
    directory: Path,
    session: dict[str, str],
    command: Command,
    *,
    make_role: Callable[[], Role],
    make_database: Callable[..., str],
    template: str,
) -> Example:
    """A fresh clone of the sample and a directory laid out as the README's `/srv/rollbot`."""
    directory.mkdir()
    shutil.copytree(MIGRATIONS_DIR, directory / "drizzle")
    shutil.copytree(ROOT / "runbooks", directory / "runbooks")
    fresh = make_database(template=template)
    params = conninfo_to_dict(fresh)
    env = {k: v for k, v in session.items() if k != "ROLLBOT_BACKUP_DIR"}
    env["DATABASE_URL"] = fresh
    stand_ins = {
        str(directory): EXAMPLE_DIR,
        str(params["dbname"]): "asset_forge",
        f"{params.get('host', 'localhost')}:{params.get('port', 5432)}": EXAMPLE_SERVER,
    }
    if "rollbot@" in command.line:
        # The README's example role: owns the sample's tables, lacks CREATEDB.
        role = make_role()
        role.run(
            fresh,
            "GRANT CREATE ON DATABASE " + str(params["dbname"]) + " TO {role}",
            "GRANT USAGE, CREATE ON SCHEMA public TO {role}",
            # As a member of the app's owning role: it owns Drizzle's schema and journal too.
            "ALTER SCHEMA drizzle OWNER TO {role}",
            "DO $$ DECLARE t text; BEGIN FOR t IN SELECT quote_ident(schemaname) || '.' || "
            "quote_ident(tablename) FROM pg_tables WHERE schemaname IN ('public', 'drizzle') "
            "LOOP EXECUTE 'ALTER TABLE ' || t || ' OWNER TO {role}'; END LOOP; END $$",
        )
        env["DATABASE_URL"] = role.conninfo(fresh)
        stand_ins[role.name] = "rollbot"
    return Example(directory, env, stand_ins)


def test_readme_commands_run_as_written(
    tmp_path: Path,
    db_0023: str,
    make_role: Callable[[], Role],
    make_database: Callable[..., str],
    asset_forge_0023_template: str,
) -> None:
    """Each runnable command in order, in a directory laid out as the README assumes."""
    shutil.copytree(MIGRATIONS_DIR, tmp_path / "drizzle")
    shutil.copytree(ROOT / "runbooks", tmp_path / "runbooks")
    params = conninfo_to_dict(db_0023)
    url = make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})
    bindir = str(Path(sys.executable).parent)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ROLLBOT_", "SLACK_", "PG", "DATABASE_URL"))
    }
    env.update(PATH=f"{bindir}:{env.get('PATH', '')}", DATABASE_URL=url)
    env["ROLLBOT_BACKUP_DIR"] = str(tmp_path / "backups")
    ran: list[str] = []
    examples: dict[tuple[str, int], Example] = {}
    for command in [c for path in DOCS for c in commands(path)]:
        if _reason(command.line) is not None:
            continue
        line = re.sub(r"DATABASE_URL=\S+", "", command.line).strip()
        cwd, run_env, stand_ins = tmp_path, env, {}
        if command.output is not None:
            key = (command.doc, command.block)
            if key not in examples:
                examples[key] = _example(
                    tmp_path / f"example{len(examples)}",
                    env,
                    command,
                    make_role=make_role,
                    make_database=make_database,
                    template=asset_forge_0023_template,
                )
            cwd, run_env, stand_ins = (
                examples[key].cwd,
                examples[key].env,
                examples[key].stand_ins,
            )
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            env[name] = shlex.split(value)[0]
            continue
        result = subprocess.run(
            ["/bin/bash", "-c", line],
            cwd=cwd,
            env=run_env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        ran.append(line)
        expected = EXIT.get(line, 0)
        assert result.returncode == expected, (line, result.stdout, result.stderr)
        if command.output is not None:
            shown = normalise(result.stdout, stand_ins)
            example = normalise("\n".join(command.output))
            assert matches(shown, example), (line, shown, example)
    assert any(r.startswith("rollbot derive") for r in ran)
