"""The ways in: the CLI and the HTTP app."""
