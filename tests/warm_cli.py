"""The `rollbot` command as a real process, without paying for its imports on every call.

A CLI test wants what a person at a shell gets: its own process, its environment and working
directory, the exit status, and everything written to file descriptors 1 and 2 (including what
`pg_dump` or `psql` children write there). Starting `python -m bot` from scratch gives all that,
but spends most of a second importing the same modules before each command; a CLI test file
makes eighty such calls.

So each pytest worker starts one server process that imports the command's modules once and then
forks a child per command: the child takes the caller's environment, directory and output files
as its own, runs `bot.cli.main` and exits with its status. The server is single-threaded, so the
fork is safe; the child is a fresh process in everything a command can observe except the time
it took to start. A start from nothing is still tested: `cold_rollbot` in tests/db/test_cli.py,
the killed and interrupted CLI tests there, and tests/db/test_install.py's installed script.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import traceback
from pathlib import Path
from typing import IO, Any

_MODULES = (
    # What `main` imports lazily for the commands tests run: loaded once in the server.
    "bot.cli",
    "bot.config",
    "bot.logs",
    "bot.service.rollback",
    "bot.service.doctor",
    "bot.core.text",
    "bot.core.library",
    "bot.drizzle.derive",
    "bot.drizzle.lint",
    "psycopg",
    "structlog",
    "rich.progress",
)


def _serve() -> None:  # pragma: no cover - runs in the server process
    """Read one request per line, fork a child for it, answer its exit status."""
    for name in _MODULES:
        importlib.import_module(name)
    main = importlib.import_module("bot.cli").main

    sys.stdout.write("ready\n")
    sys.stdout.flush()
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(main, request)
        sys.stdout.write(json.dumps({"pid": pid}) + "\n")
        sys.stdout.flush()
        _, status = os.waitpid(pid, 0)
        sys.stdout.write(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}) + "\n")
        sys.stdout.flush()


def _child(main: Any, request: dict[str, Any]) -> None:  # pragma: no cover
    code: object = 1
    try:
        os.setpgid(0, 0)  # its own group, as a shell's command: the server's signals are not its
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # as the interpreter sets it at start
        os.chdir(str(request["cwd"]))
        os.environ.clear()
        os.environ.update(request["env"])
        for fd, path, flags in (
            (0, os.devnull, os.O_RDONLY),
            (1, request["stdout"], os.O_WRONLY),
            (2, request["stderr"], os.O_WRONLY),
        ):
            os.dup2(os.open(str(path), flags), fd)
        sys.argv = ["rollbot", *request["args"]]
        code = main(request["args"])
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code
    except BaseException:  # noqa: BLE001 - an escape is the test's failure, said on stderr
        traceback.print_exc()
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
    os._exit(code if isinstance(code, int) else (0 if code is None else 1))


class WarmCli:
    """One server per pytest worker; `run` is `subprocess.run([python, -m, bot, ...])`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._server: subprocess.Popen[str] | None = None

    def _start(self) -> subprocess.Popen[str]:
        server = subprocess.Popen(
            [sys.executable, "-m", "tests.warm_cli"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
        assert server.stdout is not None
        if server.stdout.readline() != "ready\n":
            raise RuntimeError("the warm rollbot server did not start")
        atexit.register(server.kill)
        return server

    def run(
        self, args: list[str], *, env: dict[str, str], cwd: Path | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run one command; past `timeout` its process group is killed, as `subprocess.run`."""
        with (
            self._lock,
            tempfile.NamedTemporaryFile("r", encoding="utf-8", errors="replace") as out,
            tempfile.NamedTemporaryFile("r", encoding="utf-8", errors="replace") as err,
        ):
            if self._server is None or self._server.poll() is not None:
                self._server = self._start()
            request = {
                "args": args,
                "env": env,
                "cwd": str(cwd or Path.cwd()),
                "stdout": out.name,
                "stderr": err.name,
            }
            pid = _ask(self._server, json.dumps(request))["pid"]
            returncode = _answer(self._server, pid, timeout)
            return subprocess.CompletedProcess(
                ["rollbot", *args], returncode, out.read(), err.read()
            )


def _ask(server: subprocess.Popen[str], line: str) -> dict[str, int]:
    stdin: IO[str] | None = server.stdin
    assert stdin is not None
    assert server.stdout is not None
    stdin.write(line + "\n")
    stdin.flush()
    answer: dict[str, int] = json.loads(server.stdout.readline())
    return answer


def _answer(server: subprocess.Popen[str], pid: int, timeout: float) -> int:
    """The child's exit status; a child still running after `timeout` is killed and reported."""
    assert server.stdout is not None
    ready, _, _ = select.select([server.stdout], [], [], timeout)
    if not ready:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        server.stdout.readline()
        raise subprocess.TimeoutExpired(["rollbot", str(pid)], timeout)
    answer: dict[str, int] = json.loads(server.stdout.readline())
    return answer["returncode"]


WARM = WarmCli()

if __name__ == "__main__":
    _serve()
