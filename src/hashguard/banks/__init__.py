"""Hash banks: list file formats, validation and import with provenance and tombstones."""
