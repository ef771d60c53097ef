"""Adapters for vetted remote matching services (PhotoDNA Cloud, Arachnid Shield)."""
