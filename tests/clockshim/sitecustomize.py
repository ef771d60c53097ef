"""Puts a subprocess of the suite (the CLI, a server) on the same shifted clock as the
suite itself when it runs with ``--clock-ahead`` (see ``tests/conftest.py``)."""

import os

_days = int(os.environ.get("HG_TEST_CLOCK_AHEAD_DAYS") or 0)
if _days:
    from datetime import UTC, datetime, timedelta

    import time_machine

    time_machine.travel(datetime.now(UTC) + timedelta(days=_days), tick=True).start()
