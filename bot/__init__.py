"""rollbot: roll back PostgreSQL schema migrations from Slack, safely."""

__version__ = "0.1.0"
