"""The demo, its sample database and the Slack stand-in: kept in the checkout, never shipped.

The product (`bot`) never imports from here; tests and benchmarks do.
"""
