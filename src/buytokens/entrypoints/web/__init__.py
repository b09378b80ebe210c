"""The HTTP API and the Buy Tokens page."""
