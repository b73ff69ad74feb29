"""Everything that talks to a target database: facts, backups, locks, execution, scratch copies.

`TargetDatabase` is the one way in: it owns connecting, and every module here takes a connection
or a target from it.
"""
