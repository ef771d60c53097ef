"""The HTTP service: a FastAPI app for upload-time scanning, lookups, banks and scan runs."""
