"""Showing the numbers: aggregation of the daily rollups, transparency reports and the
aggregate feed for hotlines and NGOs. Everything here reads a ``StatsReader``
(``domain.stats``); nothing here records."""
