"""The stand-in opens modals as Slack does: a fresh trigger id, once, and valid Block Kit."""

import pytest
from slack_sdk.errors import SlackApiError

from demo.standin import SlackStandIn
from demo.standin.forms import TRIGGER_TTL_S

FORM = {
    "type": "modal",
    "title": {"type": "plain_text", "text": "Reject run 3"},
    "submit": {"type": "plain_text", "text": "Reject"},
    "blocks": [
        {
            "type": "input",
            "block_id": "reason",
            "label": {"type": "plain_text", "text": "Reason"},
            "element": {"type": "plain_text_input", "action_id": "reason"},
        }
    ],
}


def a_press(standin: SlackStandIn) -> str:
    """A trigger id from a press on a message, as a block_actions payload carries."""
    ts = standin.add_user_message("C0OPS", "U0BOB", "press here")
    return standin.forms.press("U0BOB", "C0OPS", ts, "Reject").trigger_id


def test_a_trigger_id_opens_one_modal_within_three_seconds(standin: SlackStandIn) -> None:
    """Once: `exchanged_trigger_id`; unknown: `invalid_trigger_id`; late: `expired_trigger_id`."""
    client = standin.client()
    trigger = a_press(standin)
    opened = client.views_open(trigger_id=trigger, view=FORM)
    assert opened["view"]["id"].startswith("V")
    (form,) = standin.forms_opened()
    assert form.user == "U0BOB"
    for trigger_id, error in ((trigger, "exchanged_trigger_id"), ("1.2.3", "invalid_trigger_id")):
        with pytest.raises(SlackApiError) as refused:
            client.views_open(trigger_id=trigger_id, view=FORM)
        assert refused.value.response["error"] == error
    late = a_press(standin)
    standin.forms._clock = lambda: 10**12
    with pytest.raises(SlackApiError) as refused:
        client.views_open(trigger_id=late, view=FORM)
    assert refused.value.response["error"] == "expired_trigger_id"
    assert TRIGGER_TTL_S == 3.0


@pytest.mark.parametrize(
    "broken",
    [
        FORM | {"title": {"type": "plain_text", "text": "x" * 25}},  # Slack allows 24
        FORM | {"submitt": {"type": "plain_text", "text": "Reject"}},  # a typo Slack refuses
        FORM | {"blocks": [{"type": "input", "label": {"type": "plain_text", "text": "R"}}]},
    ],
)
def test_a_view_slack_would_refuse_is_refused(
    standin: SlackStandIn, broken: dict[str, object]
) -> None:
    """Checked with slack_sdk's models: too long, unknown keys, an input without an element."""
    with pytest.raises(SlackApiError) as refused:
        standin.client().views_open(trigger_id=a_press(standin), view=broken)
    assert refused.value.response["error"] == "invalid_arguments"
