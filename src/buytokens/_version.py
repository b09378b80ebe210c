"""The one place the version is written; packaging and ``buytokens.__version__`` read it."""

__version__ = "0.1.0"
