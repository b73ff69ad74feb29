"""The use cases: plan, approve, execute, restore, recover; each moves a run through the core.

They call the target and state adapters and render nothing themselves.
"""
