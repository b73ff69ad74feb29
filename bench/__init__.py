"""Benchmarks: rollbot measured against the raw PostgreSQL tools on the same data.

Each scenario builds its own scratch databases, runs rollbot and the plain tool (`psql`,
`pg_dump`) side by side, and reports ratios rather than absolute times, so the numbers mean
the same on a laptop and on a CI runner. `python -m bench` runs them all (see README.md).
"""
