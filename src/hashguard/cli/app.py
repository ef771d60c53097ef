"""Assembles the command groups into the ``hashguard`` application."""

from __future__ import annotations

import typer

from hashguard.cli import (
    banks,
    config,
    db,
    demo,
    exchanges,
    hash,
    plugins,
    scan,
    serve,
    tenants,
    tokens,
    worker,
)
from hashguard.cli.actions import app as actions_app
from hashguard.cli.appeals import app as appeals_app
from hashguard.cli.audit import app as audit_app
from hashguard.cli.cases import app as cases_app
from hashguard.cli.doctor import doctor as doctor_command
from hashguard.cli.evidence import app as evidence_app
from hashguard.cli.exposure import app as exposure_app
from hashguard.cli.hma import import_hma_command
from hashguard.cli.init import init as init_command
from hashguard.cli.notices import app as notices_app
from hashguard.cli.referrals import app as referrals_app
from hashguard.cli.remote import app as remote_app
from hashguard.cli.reports import app as reports_app
from hashguard.cli.retro import retro_match_command
from hashguard.cli.statements import app as statements_app
from hashguard.cli.stats import app as stats_app
from hashguard.cli.stats_views import register as register_stats_views
from hashguard.cli.users import app as users_app

app = typer.Typer(
    name="hashguard",
    help="Find known CSAM on your own service with vetted hashes and lists.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(banks.app, name="banks")
app.add_typer(scan.runs_app, name="scans")
app.add_typer(db.app, name="db")
app.add_typer(tokens.app, name="tokens")
app.add_typer(tenants.app, name="tenants")
app.add_typer(config.app, name="config")
app.add_typer(exchanges.app, name="exchanges")
app.add_typer(plugins.app, name="plugins")
app.add_typer(plugins.keys_app, name="keys")
app.add_typer(audit_app, name="audit")
app.add_typer(evidence_app, name="evidence")
app.add_typer(actions_app, name="actions")
app.add_typer(cases_app, name="cases")
app.add_typer(users_app, name="users")
app.add_typer(remote_app, name="remote")
app.add_typer(exposure_app, name="exposure")
app.add_typer(reports_app, name="reports")
app.add_typer(referrals_app, name="referrals")
app.add_typer(notices_app, name="notices")
app.add_typer(statements_app, name="statements")
app.add_typer(appeals_app, name="appeals")
register_stats_views(stats_app)  # the table, transparency files and feed beside `verify`
app.add_typer(stats_app, name="stats")
app.command("serve")(serve.serve)
app.command("worker")(worker.worker)
app.command("hash")(hash.hash_files)
app.command("scan")(scan.scan)
app.command("retro-match")(retro_match_command)
app.command("demo")(demo.demo)
app.command("doctor")(doctor_command)
app.command("init")(init_command)
app.command("import-hma")(import_hma_command)
