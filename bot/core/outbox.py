"""Messages to be delivered to Slack, as data stored with the state change they announce.

A message names the Slack message it acts on by role (the run's `plan` message in the request
channel, or its `incident` message), not by timestamp: the timestamp exists only once the post
has been delivered, which may be after a Slack outage.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

Role = Literal["plan", "incident"]


class Message(BaseModel):
    """One Web API call to make on behalf of a run."""

    model_config = ConfigDict(frozen=True)

    action: Literal["post", "update", "reply", "upload"]
    role: Role
    channel: str | None = None  # only for `post`: where the role's message goes
    text: str
    blocks: list[dict[str, Any]] | None = None
    filename: str | None = None  # `upload`: a snippet in the role's thread
    content: str | None = None
    link_to: Role | None = None  # `post`: add a permalink to that role's message
    about: int | None = None  # a notice that the outbox message with this id was given up


class Pending(BaseModel):
    """A stored message not yet accepted by Slack."""

    model_config = ConfigDict(frozen=True)

    id: int
    run_id: int
    message: Message
    attempts: int
    due: bool = True  # its backoff has passed
    # An earlier attempt may have reached Slack and its answer was never recorded.
    uncertain: bool = False


class Undelivered(BaseModel):
    """A message Slack has not (yet) accepted, and why: what `rollbot show` reports."""

    model_config = ConfigDict(frozen=True)

    action: str
    role: Role
    attempts: int
    error: str
    given_up: bool
