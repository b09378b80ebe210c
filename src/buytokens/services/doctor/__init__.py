"""``buytokens doctor``: the set-up checks, and what each says when something is wrong.

``diagnosis.diagnose`` runs the checks of the environment (``environment``), the
store (``store``) and Stripe (``stripe_checks``) and gathers them in a ``report``.

Pure over the ports: the store and the payment account are asked for facts
(``ports.diagnostics``) and every sentence an operator reads is written here.
Secrets never enter a report: the configuration keeps only what kind of key
each variable holds (its public prefix), never the key.
"""
