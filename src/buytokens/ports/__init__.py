"""The roles the application needs filled, as small Protocols."""
