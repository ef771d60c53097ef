"""Statistics: verifying the daily rollups against the recorded events, and showing
them (aggregation, transparency reports, the aggregate feed for hotlines and NGOs).
Everything that shows numbers reads a ``StatsReader`` (``domain.stats``)."""
