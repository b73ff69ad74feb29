"""Read the repository's Dockerfile and .dockerignore the way Docker does, for the tests.

Only what our own files use is supported: comments, parser directives, line continuations,
stages, ARG defaults and `COPY`. A heredoc is refused rather than misread.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).parents[1]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

_VARIABLE = re.compile(r"\$\{(\w+)(?::([-+])([^}]*))?\}|\$(\w+)")


@dataclass(frozen=True)
class Instruction:
    """One instruction: its keyword in upper case, its text with continuations joined."""

    keyword: str
    value: str
    line: int

    def exec_form(self) -> list[str]:
        """The JSON array of an exec-form CMD, ENTRYPOINT, VOLUME or SHELL."""
        parsed = json.loads(self.value)
        assert isinstance(parsed, list)
        return [str(item) for item in parsed]

    def flags(self) -> tuple[dict[str, str], str]:
        """Leading `--name=value` flags (as on COPY and HEALTHCHECK) and the rest of the text."""
        flags: dict[str, str] = {}
        rest = self.value
        while match := re.match(r"--([\w-]+)=(\S+)\s+", rest):
            flags[match[1]] = match[2]
            rest = rest[match.end() :]
        return flags, rest


@dataclass(frozen=True)
class Stage:
    """A `FROM` and the instructions up to the next one."""

    base: str
    name: str | None
    instructions: tuple[Instruction, ...]

    def all(self, keyword: str) -> list[Instruction]:
        """Every instruction of this kind, in order."""
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction:
        """The instruction of this kind that takes effect (Docker keeps the last one)."""
        found = self.all(keyword)
        assert found, f"stage {self.name or self.base} has no {keyword}"
        return found[-1]

    def env(self, args: dict[str, str]) -> dict[str, str]:
        """The stage's ENV values, with build arguments and earlier ENV values substituted."""
        values: dict[str, str] = {}
        for instruction in self.all("ENV"):
            for token in shlex.split(instruction.value):
                name, _, value = token.partition("=")
                values[name] = expand(value, {**args, **values})
        return values


@dataclass(frozen=True)
class Dockerfile:
    """Global build arguments and the stages, in order."""

    args: dict[str, str]
    stages: tuple[Stage, ...]

    def stage(self, name: str) -> Stage:
        """The stage called `name` (`FROM … AS name`)."""
        for stage in self.stages:
            if stage.name == name:
                return stage
        msg = f"no stage named {name}"
        raise KeyError(msg)

    @property
    def final(self) -> Stage:
        """The stage `docker build` produces without `--target`."""
        return self.stages[-1]


def expand(text: str, args: dict[str, str]) -> str:
    """Replace `$NAME`, `${NAME}`, `${NAME:-word}` and `${NAME:+word}` as Docker does.

    Only the names given are replaced; every other variable is left alone.
    """

    def substitute(match: re.Match[str]) -> str:
        name = match[1] or match[4]
        if name not in args:
            return match[0]
        value = args[name]
        if match[2] == "-":  # ${NAME:-word}: the value, or word when it is empty
            return value or match[3]
        if match[2] == "+":  # ${NAME:+word}: word when the value is not empty, else nothing
            return match[3] if value else ""
        return value

    return _VARIABLE.sub(substitute, text)


def instructions(text: str) -> list[Instruction]:
    """Split Dockerfile text into instructions, dropping comments and parser directives."""
    found: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not pending:
            start = number
        assert "<<" not in stripped, f"line {number}: heredocs are not supported here"
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        keyword, _, value = " ".join(p for p in pending if p).partition(" ")
        found.append(Instruction(keyword.upper(), value.strip(), start))
        pending = []
    assert not pending, "the Dockerfile ends inside a line continuation"
    return found


def parse(text: str) -> Dockerfile:
    """Group instructions into stages; ARGs before the first FROM are global."""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    current: list[Instruction] | None = None
    base = name = ""
    for instruction in instructions(text):
        if instruction.keyword == "FROM":
            if current is not None:
                stages.append(Stage(base, name or None, tuple(current)))
            words = instruction.value.split()
            base = expand(words[0], args)
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else ""
            current = []
        elif current is None:
            assert instruction.keyword == "ARG", f"line {instruction.line}: only ARG before FROM"
            key, _, default = instruction.value.partition("=")
            args[key] = default
        else:
            current.append(instruction)
    assert current is not None, "the Dockerfile has no FROM"
    stages.append(Stage(base, name or None, tuple(current)))
    return Dockerfile(args, tuple(stages))


def load() -> Dockerfile:
    """The repository's Dockerfile."""
    return parse(DOCKERFILE.read_text(encoding="utf-8"))


def context_sources(dockerfile: Dockerfile) -> list[str]:
    """Every path a COPY takes from the build context (not from another stage)."""
    sources: list[str] = []
    for stage in dockerfile.stages:
        for copy in stage.all("COPY"):
            flags, rest = copy.flags()
            if "from" not in flags:
                sources.extend(shlex.split(rest)[:-1])
    return sources


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether Docker leaves `path` out of the build context.

    Docker's rules, as far as our .dockerignore needs them: the last pattern that matches
    the path or one of its parent folders decides, and `!` re-includes.
    """
    parts = PurePosixPath(path).parts
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    verdict = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        cleaned = pattern.removeprefix("!").strip("/")
        if any(_match(candidate, cleaned) for candidate in candidates):
            verdict = not negated
    return verdict


def _match(path: str, pattern: str) -> bool:
    if pattern.startswith("**/"):
        tail = pattern.removeprefix("**/")
        return fnmatch.fnmatchcase(path, tail) or fnmatch.fnmatchcase(path, pattern)
    # Outside `**`, a wildcard never crosses a folder boundary.
    return path.count("/") == pattern.count("/") and fnmatch.fnmatchcase(path, pattern)


def ignore_patterns() -> list[str]:
    """The .dockerignore's patterns, without comments and blank lines."""
    lines = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]
