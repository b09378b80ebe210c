"""Use cases: each one a verb that drives the domain through the ports."""
