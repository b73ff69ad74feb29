"""Peak memory of the client programs a benchmark starts (Linux, from /proc).

`getrusage(RUSAGE_CHILDREN).ru_maxrss` cannot be used for them: Linux carries the memory
high-water mark of the process that forked over the exec, so a pg_dump started from a 50 MiB
Python process reports at least 50 MiB however little it used itself. Each program's own
`VmHWM` (its peak resident set since exec) is exact, and it only grows, so reading it every
few tens of milliseconds while the program runs loses at most the last interval's growth.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from types import TracebackType

PROC = Path("/proc")


def children_of(pid: int) -> list[int]:
    """Direct children of `pid`, from every process's /proc/<pid>/stat."""
    found = []
    for entry in os.scandir(PROC):
        if not entry.name.isdigit():
            continue
        try:
            stat = (PROC / entry.name / "stat").read_text(encoding="ascii", errors="replace")
        except OSError:
            continue  # it exited while we looked
        # The command name is in brackets and may hold spaces or brackets itself.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 1 and fields[1] == str(pid):
            found.append(int(entry.name))
    return found


def parents() -> dict[int, int]:
    """Every process's parent, from one pass over /proc."""
    found: dict[int, int] = {}
    for entry in os.scandir(PROC):
        if not entry.name.isdigit():
            continue
        try:
            stat = (PROC / entry.name / "stat").read_text(encoding="ascii", errors="replace")
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 1:
            found[int(entry.name)] = int(fields[1])
    return found


def descendants_of(pid: int) -> dict[int, int]:
    """Every process below `pid` (children, their children…), each with its parent."""
    by_parent: dict[int, list[int]] = {}
    for child, parent in parents().items():
        by_parent.setdefault(parent, []).append(child)
    found: dict[int, int] = {}
    todo = [pid]
    while todo:
        parent = todo.pop()
        for child in by_parent.get(parent, []):
            found[child] = parent
            todo.append(child)
    return found


def peak_of(pid: int) -> tuple[str, int] | None:
    """The program name and VmHWM in KiB of a process, or None once it has gone."""
    name, peak = "", None
    try:
        status = (PROC / str(pid) / "status").read_text(encoding="utf-8", errors="replace")
        for line in status.splitlines():
            key, _, value = line.partition(":")
            if key == "Name":
                name = value.strip()
            elif key == "VmHWM":
                peak = int(value.split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return (name, peak) if peak is not None else None


class ChildPeaks:
    """While open, samples the peak memory of this process's children, per program name.

    With `tree`, their children too: rollbot's CLI and the pg_dump it starts.
    """

    def __init__(self, interval_s: float = 0.05, *, tree: bool = False) -> None:
        self._interval = interval_s
        self._tree = tree
        self._stop = threading.Event()
        self._last: dict[int, tuple[str, int]] = {}
        self._thread = threading.Thread(target=self._watch, name="bench-child-peaks", daemon=True)
        own = peak_of(os.getpid())
        self._own_name = own[0] if own else ""

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    def peaks_kib(self) -> dict[str, int]:
        """The largest peak seen for each program, e.g. {"pg_dump": 9120, "pg_restore": 4008}."""
        peaks: dict[str, int] = {}
        for name, peak in self._last.values():
            peaks[name] = max(peaks.get(name, 0), peak)
        return peaks

    def _watch(self) -> None:
        if not PROC.is_dir():
            return
        while not self._stop.wait(self._interval):
            if self._tree:
                self._sample_tree()
                continue
            for pid in children_of(os.getpid()):
                seen = peak_of(pid)
                # Until it calls exec, a child is still this program, with this one's memory.
                if seen is not None and seen[0] != self._own_name:
                    self._last[pid] = seen

    def _sample_tree(self) -> None:
        below = descendants_of(os.getpid())
        seen = {pid: peak for pid in below if (peak := peak_of(pid)) is not None}
        names = {os.getpid(): self._own_name} | {pid: peak[0] for pid, peak in seen.items()}
        for pid, peak in seen.items():
            # A child that has not called exec yet still bears its parent's name and memory.
            if peak[0] != names.get(below[pid], self._own_name):
                self._last[pid] = peak
