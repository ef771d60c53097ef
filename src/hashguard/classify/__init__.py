"""Classifier signals: review priority (and, when a host turns it on, review), never a match."""
