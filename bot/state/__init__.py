"""rollbot's own state: runs and their events, Slack deliveries, and the schema that holds them."""
