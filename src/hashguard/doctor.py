"""``hashguard doctor``'s checks: each a name and a function of the installation that
says ok, warn or fail, with one line of why. Nothing here changes anything: the store is
not migrated or created, no master key is created, no snapshot is written.

A check is a ``Check(name=..., run=...)`` whose ``run(ctx)`` returns ``(ok, message)``:
``ok`` a ``bool`` (``False`` is a problem) or a ``Level`` (``warn``: worth reading, not a
problem; ``skip``: could not be checked because an earlier check failed). ``CHECKS`` is
the default list; checks that need functions written elsewhere are made by the
``*_check`` factories below (permissions, orphans, the Graph API version) and added to
the list where those functions exist.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from pathlib import Path

from hashguard.actions.objquarantine import bucket_readiness
from hashguard.banks.exchanges.graph_api import DEFAULT_VERSION, graph_api_warning
from hashguard.demo.corpus import Kind, encode, generate
from hashguard.domain.banks import BankKind
from hashguard.domain.notices import NoticeState
from hashguard.domain.reports import ReportState
from hashguard.domain.statements import FilingState
from hashguard.evidence import blob_dir_of
from hashguard.evidence.retention import count_orphans
from hashguard.hashing.isolate import HashingPool
from hashguard.hashing.kernel import HashOptions
from hashguard.jobs.builtin import intervals
from hashguard.keys import MasterKey, MasterKeyError
from hashguard.matching import snapshot
from hashguard.permissions import permission_problems
from hashguard.plugins import AdapterKind, PluginError, Registry
from hashguard.remote.health import RECENT, service_health
from hashguard.remote.secrets import matcher_secrets
from hashguard.remote.service import configure_remote
from hashguard.reports.service import SINK as REPORT_SINK
from hashguard.settings import Settings
from hashguard.statements.service import SINK as STATEMENT_SINK
from hashguard.statements.service import STATEMENTS, TOKEN, sink_configured
from hashguard.store import Store, open_store
from hashguard.store.database import SchemaOutOfDate, current_revision, head_revision, make_engine


class Level(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


#: what a check finds: a level (True for ok, False for fail) and what to tell the operator
Finding = tuple[Level | bool, str]


@dataclass(frozen=True, kw_only=True, slots=True)
class Result:
    name: str
    level: Level
    message: str


class Doctor:
    """What checks may use: the settings, the day, and the store (opened once, only if
    it is reachable and its schema current; ``None`` otherwise, with the reason)."""

    def __init__(self, settings: Settings, *, today: date, now: datetime | None = None) -> None:
        self.settings = settings
        self.today = today
        #: the moment evidence ages are measured from (the start of ``today`` if not given)
        self.now = now or datetime.combine(today, datetime.min.time(), UTC)
        self._store: Store | None = None
        self._store_error: str | None = None
        self._reachable = False
        self._opened = False

    @property
    def store(self) -> Store | None:
        if not self._opened:
            self._opened = True
            self._store, self._store_error, self._reachable = _open(self.settings)
        return self._store

    @property
    def store_error(self) -> str | None:
        _ = self.store
        return self._store_error

    @property
    def reachable(self) -> bool:
        """The database answered (its schema may still be out of date)."""
        _ = self.store
        return self._reachable

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


@dataclass(frozen=True, kw_only=True, slots=True)
class Check:
    name: str
    run: Callable[[Doctor], Finding]


def _open(settings: Settings) -> tuple[Store | None, str | None, bool]:
    """The store, or why not, and whether the database answered."""
    url = settings.resolved_database_url
    if settings.database_url is None:
        path = settings.home / "hashguard.db"
        if not path.is_file():  # connecting would create it
            return None, f"no database at {path} (any command but doctor creates it)", False
    try:
        return open_store(url, migrate=False), None, True
    except SchemaOutOfDate as exc:
        return None, str(exc), True
    except Exception as exc:  # noqa: BLE001 - any driver error: the store is unreachable
        return None, f"{type(exc).__name__}: {_first_line(exc)}", False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def _needs_store(doctor: Doctor) -> Store | Finding:
    store = doctor.store
    if store is None:
        return Level.SKIP, "the store is not usable (see above)"
    return store


# -- the checks ----------------------------------------------------------------------


def check_master_key(doctor: Doctor) -> Finding:
    """Present and well-formed, and kept somewhere a copy of the home does not lose it.

    Only ``$HASHGUARD_HOME/master.key`` (neither ``HASHGUARD_MASTER_KEY`` nor
    ``HASHGUARD_MASTER_KEY_FILE`` configured) is a warning: the key then lives next to
    the database whose credentials it seals, so losing the home loses both and a copy
    of the home holds both. A missing default key is fine (it is created when first
    needed); a configured one that is missing or malformed is a problem."""
    settings = doctor.settings
    backup = "keep a copy apart from this machine and the database backups"
    try:
        if settings.master_key is not None:
            MasterKey.load(
                value=settings.master_key.get_secret_value(),
                file=None,
                default_file=settings.default_master_key_file,
            )
            return True, f"from HASHGUARD_MASTER_KEY; {backup}"
        if settings.master_key_file is not None:
            MasterKey.load(
                value=None,
                file=settings.master_key_file,
                default_file=settings.default_master_key_file,
            )
            return True, f"in {settings.master_key_file} (HASHGUARD_MASTER_KEY_FILE); {backup}"
        default = settings.default_master_key_file
        if not default.exists():
            return True, f"none yet (created in {default} when first needed)"
        MasterKey.load(value=None, file=default, default_file=default)
    except MasterKeyError as exc:
        return False, str(exc)
    return Level.WARN, (
        f"only in {default}, next to the database it protects: copy it somewhere else "
        "and set HASHGUARD_MASTER_KEY_FILE (or HASHGUARD_MASTER_KEY) to that copy"
    )


def check_store(doctor: Doctor) -> Finding:
    store, error = doctor.store, doctor.store_error
    engine_name = doctor.settings.resolved_database_url.split(":", 1)[0].split("+")[0]
    if store is None:
        if doctor.reachable:
            return True, f"{engine_name} reachable (its schema: see the next line)"
        return False, f"{engine_name}: {error}"
    try:
        store.ping()
    except Exception as exc:  # noqa: BLE001 - any driver error
        return False, f"{engine_name}: {_first_line(exc)}"
    return True, f"{engine_name} reachable"


def check_migrations(doctor: Doctor) -> Finding:
    settings = doctor.settings
    if settings.database_url is None and not (settings.home / "hashguard.db").is_file():
        return Level.SKIP, "no database yet"
    engine = make_engine(settings.resolved_database_url)
    try:
        current, head = current_revision(engine), head_revision(engine)
    except Exception as exc:  # noqa: BLE001 - unreachable: reported by the store check
        return Level.SKIP, f"cannot read the schema version: {_first_line(exc)}"
    finally:
        engine.dispose()
    if current == head:
        return True, f"schema at head ({head})"
    return (
        False,
        f"schema at {current or 'nothing'}, this version needs {head}: run `hashguard db upgrade`",
    )


def check_index(doctor: Doctor) -> Finding:
    """The saved match index belongs to this store and how far behind it is. Behind is
    normal (a server catches up when it loads it); another store's or a damaged
    snapshot is not (it is rebuilt, but something wrote it)."""
    found = _needs_store(doctor)
    if not isinstance(found, Store):
        return found
    path = doctor.settings.index_path
    if not path.exists():
        return True, f"no snapshot yet at {path} (built when a server or scan first needs it)"
    try:
        _, meta = snapshot.read(path)
    except snapshot.SnapshotError as exc:
        return False, f"{exc}: delete it (it is rebuilt), and find out what wrote it"
    if meta.get("store_id") != found.banks.store_id():
        return False, f"{path} was saved from another store: is the home shared?"
    behind = found.banks.change_seq() - int(meta.get("seq", 0))
    if behind <= 0:
        return True, "snapshot current with the store's bank changes"
    return Level.WARN, (
        f"snapshot {behind} bank change(s) behind the store (caught up when loaded; "
        "rewritten once the changes are worth compacting)"
    )


#: the benign image the pool check hashes (generated: no file is read)
_PROBE_SIZE = (64, 48)


def check_pool(doctor: Doctor) -> Finding:
    """Start one isolated hashing worker, hash a small generated image, stop it."""
    settings = doctor.settings
    image = encode(generate(Kind.PHOTO, 7, *_PROBE_SIZE), "PNG")
    started = time.monotonic()
    try:
        with HashingPool(
            workers=1,
            options=HashOptions(max_pixels=settings.max_pixels, pdq_mode=settings.pdq_mode),
            timeout=settings.decode_timeout,
            memory_mb=settings.worker_memory_mb,
        ) as pool:
            output = pool.submit_data(image).result(timeout=settings.decode_timeout + 30)
    except Exception as exc:  # noqa: BLE001 - whatever stops the pool is the finding
        return False, f"the worker pool failed: {_first_line(exc)}"
    took = time.monotonic() - started
    if output.signals is None or not output.signals.pdq:
        return False, f"a worker could not hash a generated image: {output.reason}"
    return True, f"a worker started and hashed a generated image (PDQ) in {took:.1f} s"


def check_weakening_settings(doctor: Doctor) -> Finding:
    """Settings that make the service less safe than its defaults. Each can be right
    for a test set-up; in production each needs a reason."""
    settings = doctor.settings
    found: list[str] = []
    for name, options in sorted(settings.remote.items()):
        if options.get("test_mode", True):
            found.append(f"remote matcher {name} is in test mode (its real lists are not used)")
    if not settings.review_second_confirmation:
        found.append(
            "a single confirmation makes a case reportable (review_second_confirmation off)"
        )
    if settings.review_break_after_reveals == 0:
        found.append("reviewers are never reminded to take a break (review_break_after_reveals 0)")
    if not settings.ui_secure_cookies:
        found.append("session cookies are sent over plain http (ui_secure_cookies off)")
    if settings.metrics_public:
        found.append(
            "/metrics answers without a token (metrics_public on): its series name banks "
            "and list sources; keep it on an internal network"
        )
    store = doctor.store
    if store is not None:
        for bank in store.banks.list():
            if bank.enabled and bank.kind is BankKind.KNOWN and bank.policy.shadow:
                found.append(f"bank {bank.name} is in shadow mode (its matches are not acted on)")
            if (
                bank.enabled
                and bank.kind is BankKind.KNOWN
                and not store.flood.limit(bank.name).enabled
            ):
                found.append(f"bank {bank.name} has the flood guard off")
    if not found:
        return True, "none of the settings weakens the defaults"
    return Level.WARN, "; ".join(found)


# -- slots: checks built on functions written elsewhere --------------------------------


def permissions_check(problems: Callable[[Path], Sequence[str]]) -> Check:
    """The home's and its files' permissions, by ``problems(home)`` (one line each)."""

    def run(doctor: Doctor) -> Finding:
        found = list(problems(doctor.settings.home))
        if not found:
            return True, f"{doctor.settings.home} and its files are private"
        return False, "; ".join(found)

    return Check(name="permissions", run=run)


def orphans_check(count: Callable[[Doctor], int]) -> Check:
    """Evidence left without a case (a killed scan): ``count(doctor)`` of them."""

    def run(doctor: Doctor) -> Finding:
        if doctor.store is None:
            return Level.SKIP, "the store is not usable (see above)"
        orphans = count(doctor)
        if orphans == 0:
            return True, "no evidence without a case"
        return Level.WARN, (
            f"{orphans} evidence item(s) or file(s) without a case: the retention job removes them"
        )

    return Check(name="orphans", run=run)


def graph_api_check(warning: Callable[[str, date], str | None]) -> Check:
    """Each ThreatExchange exchange's Graph API version against its end of life:
    ``warning(version, today)`` says what to do, or ``None``."""

    def run(doctor: Doctor) -> Finding:
        store = doctor.store
        if store is None:
            return Level.SKIP, "the store is not usable (see above)"
        versions = {
            exchange.name: str(exchange.settings.get("api_version") or DEFAULT_VERSION)
            for exchange in store.exchanges.list()
            if exchange.adapter == "threatexchange" and exchange.enabled
        }
        found = [
            f"{name}: {said}"
            for name, version in sorted(versions.items())
            if version and (said := warning(version, doctor.today)) is not None
        ]
        if not found:
            return True, f"{len(versions)} ThreatExchange exchange(s), none near its end"
        return Level.WARN, "; ".join(found)

    return Check(name="graph api", run=run)


def check_background_jobs(doctor: Doctor) -> Finding:
    """Each background job (``hashguard.jobs``) completed within twice its interval and
    a lease: a late one means no process runs it (every server ``--no-background`` and
    no worker), its runs fail, or its holder died and nobody took it over."""
    found = _needs_store(doctor)
    if not isinstance(found, Store):
        return found
    leases = {lease.name: lease for lease in found.leases.list()}
    if not leases:
        return True, "no background job has run on this store yet"
    grace = timedelta(seconds=doctor.settings.jobs_lease_seconds)
    late = []
    for name, every in intervals(doctor.settings).items():
        lease = leases.get(name)
        if lease is None:
            continue
        since = lease.completed_at or lease.created_at
        if doctor.now - since <= 2 * every + grace:
            continue
        said = "last completed" if lease.completed_at else "never completed; first seen"
        text = f"{name} {said} {since:%Y-%m-%d %H:%M} UTC"
        if lease.holder is not None and not lease.held(doctor.now):
            text += f" (its holder {lease.holder} stopped renewing it)"
        late.append(text)
    if late:
        return Level.WARN, (
            "; ".join(late) + ": is a `hashguard worker`, or a server without "
            "--no-background, running? (its log says why a job fails)"
        )
    return True, f"{len(leases)} background job(s) on schedule"


def check_reports(doctor: Doctor) -> Finding:
    """Reports to NCMEC: any in the dead letter (``failed``) is a problem, someone must
    look at it; reports due that nobody resumed for twice the reports job's interval
    (an hour when the job is off) are worth a warning, as is auto_report on while no
    report sink is configured."""
    found = _needs_store(doctor)
    if not isinstance(found, Store):
        return found
    settings = doctor.settings
    counts = found.reports.count_by_state()
    failed = counts.get(ReportState.FAILED, 0)
    every = timedelta(minutes=settings.reports_run_minutes or 60)
    overdue = found.reports.overdue(
        doctor.now - 2 * every - timedelta(seconds=settings.jobs_lease_seconds)
    )
    said = []
    if failed:
        said.append(
            f"{failed} report(s) failed (the dead letter): `hashguard reports list --state "
            "failed`, then `hashguard reports show ID` says why and "
            "`hashguard reports retry ID` sends it again"
        )
    if overdue:
        said.append(
            f"{len(overdue)} report(s) due but not resumed (#{', #'.join(map(str, overdue[:5]))}"
            f"{', …' if len(overdue) > 5 else ''}): is a worker running? "
            "(`hashguard reports resume` resumes them now)"
        )
    if settings.auto_report and not found.reports.settings(REPORT_SINK)[1]:
        said.append(
            "auto_report is on but the report sink has no credentials "
            "(`hashguard reports settings`)"
        )
    if failed:
        return False, "; ".join(said)
    if said:
        return Level.WARN, "; ".join(said)
    finished = counts.get(ReportState.FINISHED, 0)
    return True, f"{sum(counts.values())} report(s), {finished} finished, none failed or late"


def check_remote(doctor: Doctor) -> Finding:
    """Each configured remote matcher and classifier can be built (adapter enabled,
    settings valid, credentials present and opening) and, where its adapter has a check
    call that carries no file's data, the service accepts the credentials. Each is shown
    with its kind, its mode (test or live), its last recorded answer and its share of
    ``not_answered`` in the hour before ``now`` (``remote.health``)."""
    settings = doctor.settings
    if not settings.remote:
        return True, "none configured (local banks only)"
    found = _needs_store(doctor)
    if not isinstance(found, Store):
        return found
    try:
        secrets = matcher_secrets(
            settings.remote,
            plaintext=settings.remote_secrets,
            stored=found.remote_secrets,
            master_key=lambda: _existing_master_key(settings),
        )
        matchers = configure_remote(Registry.load(settings.adapters), settings.remote, secrets)
    except PluginError as exc:
        return False, str(exc)
    said: list[str] = []
    failed = False
    health = {
        h.name: h
        for h in service_health(
            settings.remote,
            Registry.load(settings.adapters),
            found.scans.recent_remote(RECENT),
            found.stats,
            now=doctor.now,
        )
    }
    try:
        for matcher in matchers:
            # test or live: whether a match from it is taken for a real classification
            mode = "test" if matcher.options.test_mode else "live"
            kind = "classifier, " if matcher.kind is AdapterKind.CLASSIFIER else ""
            named = f"{matcher.label} ({kind}{mode})"
            seen = health.get(matcher.label)
            recorded = f"; {seen.describe()}" if seen is not None else ""
            try:
                answer = matcher.probe()
            except Exception as exc:  # noqa: BLE001 - any failure of the check is the finding
                failed = True
                said.append(f"{named}: {_first_line(exc)}{recorded}")
                continue
            said.append(f"{named}: {answer or 'configured (no check call)'}{recorded}")
    finally:
        for matcher in matchers:
            matcher.close()
    return not failed, "; ".join(said)


def _existing_master_key(settings: Settings) -> MasterKey:
    """The master key as configured, never created (``MasterKeyError`` when missing)."""
    if settings.master_key is not None:
        value, file = settings.master_key.get_secret_value(), None
    else:
        value, file = None, settings.master_key_file or settings.default_master_key_file
    key, _ = MasterKey.load(value=value, file=file, default_file=settings.default_master_key_file)
    return key


def _late(doctor: Doctor, minutes: float) -> datetime:
    """What a job running every ``minutes`` (an hour when it is off) should have taken
    by now: anything older than twice its interval and a lease."""
    every = timedelta(minutes=minutes or 60)
    return doctor.now - 2 * every - timedelta(seconds=doctor.settings.jobs_lease_seconds)


def check_statements(doctor: Doctor) -> Finding:
    """Statements of reasons and the Transparency Database. The sink off is fine: only
    online platforms file (Art. 24(5)); a hosting service keeps it off. With it on, a
    statement the Database refused (``failed``, the dead letter) is a problem, one
    waiting longer than twice the statements job's interval is worth a warning, as is a
    sink switched on without its token or with statements off."""
    found = _needs_store(doctor)
    if not isinstance(found, Store):
        return found
    issuing = bool(found.statements.settings(STATEMENTS)[0].get("issue"))
    stored, sealed = found.statements.settings(STATEMENT_SINK)
    counts = found.statements.count_by_state()
    total = sum(counts.values())
    said = f"statements {'on' if issuing else 'off'}, {total} issued"
    if not sink_configured(found):
        if stored.get("enabled") and TOKEN not in sealed:
            return False, (
                f"{said}; the Transparency Database sink is on but has no token: "
                "`hashguard statements settings --token env:VAR`"
            )
        return True, (
            f"{said}; the Transparency Database sink is off (fine for a hosting service "
            "that is not an online platform; online platforms file every statement: "
            "`hashguard statements settings --tdb`)"
        )
    problems, warnings = [], []
    if failed := counts.get(FilingState.FAILED, 0):
        problems.append(
            f"{failed} statement(s) refused by the Database (the dead letter): "
            "`hashguard statements list --state failed`, then `hashguard statements "
            "submit --retry-failed` once fixed"
        )
    waiting = found.statements.list(states=[FilingState.PENDING, FilingState.SENDING])
    late = [
        s for s in waiting if s.created_at < _late(doctor, doctor.settings.statements_run_minutes)
    ]
    if late:
        oldest = late[0]
        error = f"; last error: {oldest.last_error[:200]}" if oldest.last_error else ""
        warnings.append(
            f"{len(late)} statement(s) not filed since {oldest.created_at:%Y-%m-%d %H:%M} UTC"
            f"{error}: is a worker running? (`hashguard statements submit` files them now)"
        )
    if not issuing:
        warnings.append("the sink is on but no statements are issued (`--issue`)")
    if problems:
        return False, "; ".join(problems + warnings)
    if warnings:
        return Level.WARN, "; ".join(warnings)
    filed = counts.get(FilingState.FILED, 0)
    return True, f"{said}, {filed} filed in the Transparency Database; none failed or late"


def check_notices(doctor: Doctor) -> Finding:
    """Notices waiting to be resolved: with no platform callback configured nothing
    resolves them (a problem once one waits); with one, a notice still ``received`` or
    ``failed`` after twice the notices job's interval is worth a warning."""
    found = _needs_store(doctor)
    if not isinstance(found, Store):
        return found
    settings = doctor.settings
    callback = (
        settings.notices_callback_url is not None and settings.notices_callback_secret is not None
    )
    waiting = found.notices.list(
        states=[NoticeState.RECEIVED, NoticeState.RESOLVING, NoticeState.FAILED]
    )
    if not waiting:
        return True, "no notice waiting" + (
            "" if callback else "; no platform callback configured (notices would wait)"
        )
    oldest = min(n.received_at for n in waiting)
    if not callback:
        return False, (
            f"{len(waiting)} notice(s) waiting since {oldest:%Y-%m-%d %H:%M} UTC and no platform "
            "callback resolves them: set notices_callback_url and notices_callback_secret"
        )
    stuck = [n for n in waiting if n.received_at < _late(doctor, settings.notices_run_minutes)]
    if not stuck:
        return True, f"{len(waiting)} notice(s) being resolved, none stuck"
    failed = [n for n in stuck if n.state is NoticeState.FAILED]
    said = [f"{len(stuck)} notice(s) unresolved since {oldest:%Y-%m-%d %H:%M} UTC"]
    if failed:
        last = max(failed, key=lambda n: n.updated_at)
        said.append(
            f"{len(failed)} failed (retried with backoff; last error: "
            f"{(last.last_error or 'none')[:200]}): `hashguard notices list --state failed`"
        )
    if len(failed) < len(stuck):
        said.append("is a worker running? (`hashguard notices resolve` resolves them now)")
    return Level.WARN, "; ".join(said)


def check_object_quarantine(doctor: Doctor) -> Finding:
    """The quarantine bucket exists, and whether copies there get a legal hold."""
    ok, message = bucket_readiness(doctor.settings)
    return (Level.WARN if ok is None else ok), message


#: The checks ``hashguard doctor`` runs, in order.
CHECKS: tuple[Check, ...] = (
    permissions_check(permission_problems),
    Check(name="master key", run=check_master_key),
    Check(name="store", run=check_store),
    Check(name="migrations", run=check_migrations),
    Check(name="index", run=check_index),
    Check(name="worker pool", run=check_pool),
    Check(name="safety settings", run=check_weakening_settings),
    Check(name="remote matchers", run=check_remote),
    orphans_check(
        lambda d: (
            count_orphans(d.store.evidence, blob_dir_of(d.settings), d.now).removable
            if d.store is not None
            else 0
        )
    ),
    graph_api_check(graph_api_warning),
    Check(name="background jobs", run=check_background_jobs),
    Check(name="reports", run=check_reports),
    Check(name="statements", run=check_statements),
    Check(name="notices", run=check_notices),
    Check(name="object quarantine", run=check_object_quarantine),
)


def _level(ok: Level | bool) -> Level:
    if isinstance(ok, Level):
        return ok
    return Level.OK if ok else Level.FAIL


def run_checks(
    settings: Settings,
    checks: Sequence[Check] = CHECKS,
    *,
    today: date | None = None,
    now: datetime | None = None,
) -> Iterator[Result]:
    """Each check's result, as it is made. A check that raises is a failure, named.
    ``now`` (else the clock) is the moment checks measure from; ``today`` alone sets
    the day (and ``now`` its start)."""
    if today is not None and now is None:
        doctor = Doctor(settings, today=today)
    else:
        now = now or datetime.now(UTC)
        doctor = Doctor(settings, today=today or now.astimezone().date(), now=now)
    try:
        for check in checks:
            try:
                ok, message = check.run(doctor)
            except Exception as exc:  # noqa: BLE001 - a broken check is a finding, not a crash
                ok, message = (
                    False,
                    f"the check itself failed: {type(exc).__name__}: {_first_line(exc)}",
                )
            yield Result(name=check.name, level=_level(ok), message=message)
    finally:
        doctor.close()
