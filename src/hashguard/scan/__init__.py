"""Scanning local storage: walk, hash in isolated workers, match, record one outcome per file."""
