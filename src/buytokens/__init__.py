"""Sell token packages through Stripe and credit them exactly once."""

__version__ = "0.1.0"
