"""Statistics: what is counted per file, and the verification of the rollups."""
