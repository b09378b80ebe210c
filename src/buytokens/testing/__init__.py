"""Tooling that is not the product: the Stripe twin, the localstripe runner and the demo.

Nothing on the production import path imports this package; ``buytokens demo``
loads it when asked for. localstripe and mongomock come with the ``demo`` extra
(``pip install 'buytokens[demo]'``).
"""
