"""Block Kit and mrkdwn as a reader sees them, reduced to plain lines.

Only what carries meaning in a transcript is kept: section, header and context text, fields,
button labels, code. Layout (images, accessories' styles, dividers' looks) is reduced to a
marker, so a test can assert on words without caring how the message was laid out.
"""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from demo.standin.model import JSON

    # (kind, id) -> name: kind is "@" for users, "#" for channels, "subteam" for groups.
    Mention: TypeAlias = Callable[[str, str], str]

CODE_LINES = 8
FENCE = "```"
_ANGLED = re.compile(r"<([^<>]+)>")


def render_mrkdwn(text: str, mention: Mention) -> list[str]:
    """Non-empty lines of mrkdwn, with mentions and links resolved and code indented."""
    text = html.unescape(_ANGLED.sub(lambda match: _angled(match.group(1), mention), text))
    lines: list[str] = []
    code: list[str] | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if code is None and stripped.startswith(FENCE):
            inner = stripped[len(FENCE) :]
            if inner.endswith(FENCE):
                lines.extend(_code([inner[: -len(FENCE)]]))
            else:
                code = [inner] if inner else []
        elif code is not None and stripped.endswith(FENCE):
            code.extend([stripped[: -len(FENCE)]] if stripped != FENCE else [])
            lines.extend(_code(code))
            code = None
        elif code is not None:
            code.append(line.rstrip())
        elif stripped:
            lines.append(line.rstrip())
    if code:
        lines.extend(_code(code))
    return lines


def _angled(inside: str, mention: Mention) -> str:
    target, _, label = inside.partition("|")
    if target.startswith("@"):
        return mention("@", target[1:])
    if target.startswith("#"):
        return mention("#", target[1:])
    if target.startswith("!subteam^"):
        return mention("subteam", target.removeprefix("!subteam^"))
    if target.startswith("!"):
        return label or "@" + target[1:]
    return label or target


def _code(lines: list[str]) -> list[str]:
    shown = ["    " + line for line in lines[:CODE_LINES]]
    if len(lines) > CODE_LINES:
        shown.append(f"    ... {len(lines) - CODE_LINES} more lines")
    return shown


def _text(value: object) -> str:
    """The string inside a text object (`{"type": "mrkdwn", "text": ...}`) or a bare string."""
    if isinstance(value, dict):
        return str(value.get("text", ""))
    return "" if value is None else str(value)


def render_blocks(blocks: Iterable[JSON], mention: Mention) -> list[str]:
    """The lines each block shows, in order."""
    lines: list[str] = []
    for block in blocks:
        lines.extend(_block(block, mention))
    return lines


def _block(block: JSON, mention: Mention) -> list[str]:  # noqa: PLR0911 - one answer per block type
    kind = block.get("type")
    elements: list[JSON] = [e for e in block.get("elements", []) if isinstance(e, dict)]
    if kind == "header":
        return [_text(block.get("text"))]
    if kind == "section":
        return _section(block, mention)
    if kind == "context":
        parts = [" ".join(render_mrkdwn(_text(e), mention)) for e in elements if "text" in e]
        return [" · ".join(p for p in parts if p)]
    if kind == "divider":
        return ["---"]
    if kind == "actions":
        return [" ".join(f"[{_text(e.get('text'))}]" for e in elements if "text" in e)]
    if kind == "image":
        return [f"[image: {block.get('alt_text', '')}]"]
    if kind == "markdown":
        return render_mrkdwn(_text(block.get("text")), mention)
    if kind == "rich_text":
        return _rich_text(elements, mention)
    return [f"[{kind} block]"]


def _section(block: JSON, mention: Mention) -> list[str]:
    lines = render_mrkdwn(_text(block.get("text")), mention)
    fields = [" ".join(render_mrkdwn(_text(f), mention)) for f in block.get("fields", [])]
    if fields:
        lines.append(" · ".join(fields))
    accessory = block.get("accessory")
    if isinstance(accessory, dict) and "text" in accessory:
        lines.append(f"[{_text(accessory.get('text'))}]")
    return lines


def _rich_text(elements: list[JSON], mention: Mention) -> list[str]:
    lines: list[str] = []
    for element in elements:
        text = _inline(element, mention)
        kind = element.get("type")
        if kind == "rich_text_preformatted":
            lines.extend(_code(text.splitlines()))
        elif kind == "rich_text_quote":
            lines.extend("> " + line for line in text.splitlines())
        elif kind == "rich_text_list":
            items = [i for i in element.get("elements", []) if isinstance(i, dict)]
            lines.extend("- " + _inline(item, mention) for item in items)
        else:
            lines.extend(line for line in text.splitlines() if line.strip())
    return lines


def _inline(element: JSON, mention: Mention) -> str:
    parts: list[str] = []
    for part in element.get("elements", []):
        kind = part.get("type")
        if kind == "user":
            parts.append(mention("@", str(part.get("user_id", ""))))
        elif kind == "channel":
            parts.append(mention("#", str(part.get("channel_id", ""))))
        elif kind == "usergroup":
            parts.append(mention("subteam", str(part.get("usergroup_id", ""))))
        elif kind == "emoji":
            parts.append(f":{part.get('name', '')}:")
        elif kind == "broadcast":
            parts.append("@" + str(part.get("range", "")))
        else:
            parts.append(str(part.get("text") or part.get("url") or ""))
    return "".join(parts)
