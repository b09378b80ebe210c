"""The embedded store: everything buytokens keeps, in one SQLite file."""
