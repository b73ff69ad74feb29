"""The Docker builder's install steps, run here: no database, but the real package index.

The image cannot be built in the test suite, so this test does what the builder stage does
with the files the builder copies: build a wheel, install it into a fresh virtualenv that has
no pip, and run what the image runs. It catches a module missing from the package, a runtime
import from a dev-only dependency, and a console script that does not start.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import zipfile
from typing import TYPE_CHECKING

import pytest

from tests.dockerfile import ROOT, load

if TYPE_CHECKING:
    from pathlib import Path

_CLEAN = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"}
_LIST_DISTRIBUTIONS = (
    "import importlib.metadata as m\nfor d in m.distributions(): print(d.metadata['Name'])"
)


def _run(*argv: str | Path, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k not in _CLEAN}
    done = subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"{shlex.join(map(str, argv))}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _builder_context(into: Path) -> Path:
    """Copy what the builder stage COPYs from the build context into a folder like /src."""
    builder = load().stage("builder")
    for copy in builder.all("COPY"):
        flags, rest = copy.flags()
        assert "from" not in flags
        *sources, target = shlex.split(rest)
        for source in sources:
            origin, destination = ROOT / source, into / target
            if origin.is_dir():  # Docker copies a folder's contents into the target
                ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
                shutil.copytree(origin, destination, ignore=ignore, dirs_exist_ok=True)
            else:
                if target.endswith("/"):
                    destination /= origin.name
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, destination)
    return into


@pytest.mark.slow
def test_builder_steps_install_a_working_rollbot(tmp_path: Path) -> None:
    """A wheel from the builder's files installs into a clean venv whose rollbot runs."""
    source = _builder_context(tmp_path / "src")
    wheels = tmp_path / "wheels"
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", wheels, ".", cwd=source)
    (wheel,) = wheels.glob("rollbot-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        archive_names = archive.namelist()
    top_level = {name.split("/")[0] for name in archive_names}
    assert "bot" in top_level
    # The demo, its sample data and the Slack stand-in stay in the checkout.
    assert not top_level & {"tests", "demo", "handlers"}
    assert not [n for n in archive_names if "standin" in n or "fixtures" in n]

    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    _run(sys.executable, "-m", "pip", "--python", python, "install", wheel, cwd=tmp_path)

    assert _run(venv / "bin" / "rollbot", "--version", cwd=tmp_path).strip() == "rollbot 0.1.0"
    assert "usage: rollbot" in _run(venv / "bin" / "rollbot", "--help", cwd=tmp_path)
    where = _run(
        python, "-c", "import bot.service.rollback, bot.app; print(bot.__file__)", cwd=tmp_path
    )
    assert where.startswith(str(venv)), "bot was imported from the source tree, not the venv"
    names = {name.lower() for name in _run(python, "-c", _LIST_DISTRIBUTIONS, cwd=tmp_path).split()}
    assert "rollbot" in names
    assert "psycopg-binary" in names
    assert "pgserver" not in names, "the embedded extra must not reach production installs"
    assert "pip" not in names
