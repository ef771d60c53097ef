"""HMA's (OpenMediaMatch's) API over hashguard's pipeline, services and audit (docs/hma.md)."""
