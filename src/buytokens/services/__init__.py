"""Use cases: each one a verb that drives the domain through the ports.

One calling style everywhere: a use case takes its dependencies first, as one
frozen attrs bundle named for it (``BuyingDependencies``, ``WebhookDependencies``,
...) that holds exactly the ports it calls, then the request, then keyword-only
options. A use case that calls a single port takes that port itself (e.g.
``recorded_check(store, ...)``). A bundle that builds on another use case holds
that use case's bundle (``CheckingDependencies.crediting``), so nothing is
carried into a use case that never calls it. The composition root
(``entrypoints/composition.py``) builds every bundle once per deployment.

- ``buying``: create a payment intent, the return-page check, the offered methods.
- ``webhooks``: receive a webhook, apply a verified provider event.
- ``crediting``: apply a payment event exactly once (the settle loop).
- ``admin``: an operator's grant, review list and approval.
- ``reconciliation``: apply the provider events webhooks missed.
- ``doctor``: the set-up checks.
"""
