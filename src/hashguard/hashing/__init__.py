"""Safe decoding and the vetted hashers (MD5, SHA-1, SHA-256, PDQ), isolated in worker processes."""
