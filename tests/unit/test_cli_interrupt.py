"""An interrupt before rollbot reaches a database: one line, 128 + the signal, no traceback."""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING, NoReturn

import pytest

from bot import cli

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture(autouse=True)
def _handlers_put_back() -> Iterator[None]:
    """`main` installs its own handlers; the test runner gets its own back."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


@pytest.mark.parametrize(
    ("raised", "status"),
    [(KeyboardInterrupt, 130), (cli.Terminated, 143)],
    ids=["ctrl-c", "sigterm"],
)
def test_an_interrupt_while_the_arguments_are_parsed_is_one_line(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    raised: type[KeyboardInterrupt],
    status: int,
) -> None:
    """Parsing imports the core (a second on a loaded machine): Ctrl-C there is caught too."""

    def interrupted() -> NoReturn:
        raise raised

    monkeypatch.setattr(cli, "build_parser", interrupted)
    assert cli.main(["runs"]) == status
    err = capsys.readouterr().err
    assert err.splitlines() == [cli.INTERRUPTED_UNSETTLED]


def test_ctrl_c_is_caught_even_when_rollbot_was_started_with_it_ignored() -> None:
    """A background job of a shell without job control inherits SIGINT ignored; main undoes it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    cli._catch_signals()  # the first thing main does
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with pytest.raises(cli.Terminated):
        signal.raise_signal(signal.SIGTERM)
