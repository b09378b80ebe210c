"""The pure core: money, packages, purchases, the ledger and the crediting rules."""
