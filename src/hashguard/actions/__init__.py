"""Actions on decisions: the transactional outbox, signed webhooks and quarantine."""
