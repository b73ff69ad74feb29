"""The one way rollbot starts a child process: a client tool, an argument list, no shell.

Every call closes stdin (a tool that asks for a password fails instead of hanging), captures
output as text, and creates files readable by rollbot's user only. Callers turn a failure to
start into their own error, because only they know what the person should do about it.
"""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

# Raised when a tool cannot be started or runs past its timeout.
ToolError = (OSError, subprocess.TimeoutExpired)


def run_tool(
    binary: Path,
    args: list[str],
    *,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `binary` with `args`; its exit status is the caller's to judge."""
    return subprocess.run(
        [str(binary), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=env,
        umask=0o077,
        encoding="utf-8",
        errors="replace",
        timeout=timeout,
        check=False,
    )
