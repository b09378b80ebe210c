"""MongoDB store in LibreChat's own collections: ``store`` the layout, ``writes`` exactly once."""
