"""Slack: Block Kit views, the listeners Bolt calls, the courier that delivers, the directory."""
