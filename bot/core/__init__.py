"""The pure core: runbooks, SQL, plans, runs and their moves, policy, results and views.

Nothing here connects to a database, talks to Slack, starts a process or writes a file; every
function is tested with plain values. The floors above bring the facts in and carry the results out.
"""
