"""`/rollback` text is parsed strictly: requests, or refusals with usage and a suggestion."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.commands import Command, CommandError, parse_command


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("0023", Command(action="plan", migration="0023")),
        ("  23 ", Command(action="plan", migration="23")),
        ("0023_loud_shen", Command(action="plan", migration="0023_loud_shen")),
        ("help", Command(action="help")),
        ("LIST", Command(action="list")),
        ("status", Command(action="status")),
        ("status #12", Command(action="status", run_id=12)),
        ("cancel 12", Command(action="cancel", run_id=12)),
        ("0023 --dry-run", Command(action="plan", migration="0023", dry_run=True)),
        (
            "0023 --dry-run --target staging",
            Command(action="plan", migration="0023", target="staging", dry_run=True),
        ),
        ("history", Command(action="history")),
        ("restore 4", Command(action="restore", run_id=4)),
        (
            "0023 --target staging --after 7",
            Command(action="plan", migration="0023", target="staging", after=7),
        ),
    ],
)
def test_requests_parse(text: str, command: Command) -> None:
    """Each documented form yields its command."""
    assert parse_command(text) == command


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "Which migration"),
        ("0023; DROP TABLE users", "is not a migration id"),
        ("stauts", "Did you mean `status`?"),
        ("cancel", "needs a run id"),
        ("cancel twelve", "is not a run id"),
        ("help me", "takes no"),
        ("0023 --taget prod", "Did you mean `--target`?"),
        ("0023 --target", "needs a value"),
        ("0023 --target Prod;rm", "is not a target name"),
        ("<@U123> 0023", "is not a migration id"),
    ],
)
def test_bad_input_is_explained(text: str, words: str) -> None:
    """Bad input names what is wrong and carries the usage."""
    with pytest.raises(CommandError) as caught:
        parse_command(text)
    assert words in caught.value.render()
    assert "/rollback help" in caught.value.usage


def test_quoted_input_cannot_ping_or_break_formatting() -> None:
    """A mention or backtick in the input is shown inert, never as a mention or code."""
    with pytest.raises(CommandError) as caught:
        parse_command("<!channel> `x`")
    message = caught.value.render()
    assert "<!channel>" not in message
    assert "&lt;!channel&gt;" in message
    assert "`x`" not in message


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=200),
        st.text(alphabet="0123456789_;'\"`<>@!# -", max_size=60),
        st.builds(lambda n: "x" * n, st.integers(min_value=0, max_value=10_000)),
    )
)
def test_any_text_parses_or_is_refused_cleanly(text: str) -> None:
    """Arbitrary text (unicode, 10 kB, quotes, ;, backticks, mentions) never crashes the parser."""
    try:
        command = parse_command(text)
    except CommandError as exc:
        rendered = exc.render()
        assert len(rendered) < 400
        assert "<@" not in rendered
        assert "<!" not in rendered
        return
    if command.action == "plan":
        assert command.migration is not None
        assert command.migration.split("_")[0].isdigit()
        assert ";" not in command.migration
