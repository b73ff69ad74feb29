"""Slack listeners: they translate Slack payloads into calls on the core and nothing more."""
