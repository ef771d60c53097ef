"""Hash-sharing exchanges: the list-source adapter kind, the sync engine, the adapters."""
