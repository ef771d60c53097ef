"""The human-readable summary of a transparency report: one self-contained HTML page
(no script, no external resource; print it to PDF from a browser if a PDF is needed)."""

from __future__ import annotations

from datetime import UTC

from jinja2 import Environment, PackageLoader, select_autoescape

from hashguard import __version__
from hashguard.stats.transparency import TransparencyReport

_ENV = Environment(
    loader=PackageLoader("hashguard.stats", "templates"),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


def summary_html(report: TransparencyReport) -> str:
    return _ENV.get_template("transparency.html").render(
        report=report,
        version=__version__,
        generated=report.generated_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )
