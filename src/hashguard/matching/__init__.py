"""Matching signals against banks: an exact-hash index, a PDQ index and the Matcher over both."""
