"""PostgreSQL's client tools: finding pg_dump/pg_restore/psql, running them, their conninfo.

The one floor that starts child processes, so that a password never reaches a command line.
"""
