"""Slack lists and the history: nothing cut silently, nothing from data becomes markup."""

import json

from hypothesis import given
from hypothesis import strategies as st

from bot.drizzle.history import HistoryEntry
from bot.slack.blocks import _sql_section_text, history_message, sql_fits
from bot.slack.mrkdwn import SECTION_LIMIT, escape, listed, section


def test_a_list_too_long_for_one_section_says_how_many_it_left_out() -> None:
    lines = [f"no-op (line {n}): index idx_{n} does not exist" for n in range(200)]
    text = listed("*Preflight*", lines)["text"]["text"]
    assert len(text) <= SECTION_LIMIT
    shown = text.count("\n• ")
    assert 0 < shown < len(lines)
    assert text.endswith(f"\n… and {len(lines) - shown} more")


def test_a_list_that_fits_is_shown_whole() -> None:
    text = listed("*Head*", ["one", "two"])["text"]["text"]
    assert text == "*Head*\n• one\n• two"


@given(st.lists(st.text(min_size=0, max_size=4000), max_size=40))
def test_a_list_always_fits_and_always_accounts_for_every_line(lines: list[str]) -> None:
    escaped = [escape(line) for line in lines]
    text = listed("*Head*", escaped)["text"]["text"]
    assert len(text) <= SECTION_LIMIT
    shown = text.count("\n• ")
    if shown < len(lines):
        assert text.endswith(f"… and {len(lines) - shown} more") or (
            shown == 1 and len(lines) == 1 and text.endswith("…")
        )


def test_history_is_block_kit_and_its_data_stays_inert() -> None:
    entries = [
        HistoryEntry(
            migration="0024_<!channel>.sql",
            date="2025-11-20",
            description="drops <@U0BOSS> & <https://evil.example|click>",
            status="current",
            problems=("journal row <!here> has no file",),
        ),
        HistoryEntry(
            migration="0023_loud_shen.sql", date="2025-11-13", description="-", status="applied"
        ),
    ]
    text, blocks = history_message(entries)
    rendered = json.dumps(blocks, ensure_ascii=False) + text
    for raw in ("<!channel>", "<@U0BOSS>", "<https://", "<!here>"):
        assert raw not in rendered
    assert "&lt;!channel&gt;" in rendered
    assert "`0023_loud_shen.sql` · 2025-11-13 · *applied*" in rendered
    assert "|" not in blocks[0]["text"]["text"].replace("&lt;https://evil.example|click&gt;", "")


@given(st.integers(min_value=2900, max_value=3100))
def test_sql_near_the_limit_is_shown_whole_or_attached_never_cut(length: int) -> None:
    """SQL of 2,965 to 2,992 characters used to be cut with its code fence left open."""
    sql = "DROP TABLE IF EXISTS t;\n" + "-" * (length - 24)
    if not sql_fits(sql):
        return  # attached in the thread instead, whole
    text = section(_sql_section_text(escape(sql)))["text"]["text"]
    assert len(text) <= SECTION_LIMIT
    assert text.count("```") == 2
    assert "more characters" not in text


_DRAWS = set("\x1b\r\x08\x07\x00\x7f\x85\u202e\u2066")


@given(st.text(max_size=200))
def test_no_text_reaches_slack_as_markup_or_a_control_character(text: str) -> None:
    """Whatever a name or a message holds, Slack gets no `<…>` and nothing that draws."""
    shown = escape(text)
    assert not {"<", ">"} & set(shown)
    assert not _DRAWS & set(shown)
    assert shown.count("\n") == text.count("\n")  # rollbot's own layout is made of these


def test_a_hostile_description_in_the_history_is_shown_as_escapes() -> None:
    entry = HistoryEntry(
        migration="0040_evil",
        date="2025-11-13",
        description="evil\x1b[2J\u202e<!channel>",
        status="current",
    )
    text = json.dumps(history_message([entry]), ensure_ascii=False)
    assert "\\\\x1b[2J\\\\u202e&lt;!channel&gt;" in text
    assert "<!channel>" not in text
