"""The one Settings object: read once from HASHGUARD_* variables and an optional TOML file."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from hashguard.domain.actions import EventType
from hashguard.domain.notices import NotifierKind
from hashguard.domain.people import Role
from hashguard.domain.referrals import HOTLINE_KEY_PATTERN, KNOWN_HOTLINES
from hashguard.domain.signals import PdqMode

CONFIG_ENV = "HASHGUARD_CONFIG"


def _default_home() -> Path:
    return platformdirs.user_data_path("hashguard", appauthor=False)


class WebhookEndpointSettings(BaseModel):
    """One webhook endpoint. ``secret`` is a Standard Webhooks secret: ``whsec_`` and the
    base64 of 24 to 64 random bytes. ``events`` empty: every event."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,99}$")
    url: str = Field(pattern=r"^https?://")
    secret: SecretStr
    events: tuple[EventType, ...] = ()


class HotlineSettings(BaseModel):
    """A hotline this host refers confirmed cases to by hand, on its web form (there is
    no API: nothing is sent). For a built-in name (``iwf``, ``eokm``, ``bee-secure``)
    every field defaults to the known value; another name needs them all."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    #: the public page of the hotline's report form
    form_url: str = Field(pattern=r"^https://\S+$", max_length=2000)
    #: ISO 3166-1 alpha-2
    country: str = Field(pattern=r"^[A-Z]{2}$")
    notes: str = Field(default="", max_length=2000)


class NotifierSettings(BaseModel):
    """A notifier whose DSA notices go first: a trusted flagger (Art. 22), a hotline or an
    authority. ``tokens``: the names of the API tokens that send its notices (a notice
    sent with one of them is this notifier's, whatever its body says)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    kind: NotifierKind
    tokens: tuple[str, ...] = ()


def _hotlines(value: Any) -> Any:
    """``referral_hotlines`` as given: a list of built-in names switches them on; a
    built-in's table may override some of its fields."""
    if isinstance(value, list | tuple):
        if not all(isinstance(name, str) for name in value):
            raise ValueError("a list of hotlines holds their names")
        value = {name: {} for name in value}
    if not isinstance(value, dict):
        return value
    resolved: dict[Any, Any] = {}
    for key, given in value.items():
        if not isinstance(key, str) or not re.fullmatch(HOTLINE_KEY_PATTERN, key):
            raise ValueError(
                f"{key!r} is not a hotline name: lowercase letters, digits, '-' or '_'"
            )
        known = KNOWN_HOTLINES.get(key)
        if known is None and not given:
            raise ValueError(
                f"{key!r} is not a built-in hotline ({', '.join(KNOWN_HOTLINES)}): "
                "give its name, form_url and country"
            )
        if known is not None and (given is None or isinstance(given, dict)):
            resolved[key] = {**known.as_settings(), **(given or {})}
        else:
            resolved[key] = given
    return resolved


class Settings(BaseSettings):
    """Frozen settings passed down explicitly; nothing reads the environment after this.

    Sources, highest priority first: constructor arguments, ``HASHGUARD_*``
    environment variables, the TOML file named by ``HASHGUARD_CONFIG`` (or
    ``$HASHGUARD_HOME/hashguard.toml`` when it exists), then the defaults.
    """

    model_config = SettingsConfigDict(env_prefix="HASHGUARD_", frozen=True, extra="forbid")

    home: Path = Field(default_factory=_default_home)
    database_url: SecretStr | None = None
    workers: int = Field(default_factory=lambda: len(os.sched_getaffinity(0)), ge=1, le=256)
    max_pixels: int = Field(default=50_000_000, ge=1)
    max_frames: int = Field(default=1, ge=1, le=10_000)
    pdq_mode: PdqMode = PdqMode.FAST
    decode_timeout: float = Field(default=30.0, gt=0)
    #: a video's wall-time limit in its worker (``decode_timeout`` is every other file's)
    video_timeout: float = Field(default=600.0, gt=0)
    #: an animated GIF/WebP of more frames than this is sampled like a video (one frame
    #: a second by its frame durations); one of this many or fewer stays an image
    animation_frames: int = Field(default=10, ge=1, le=10_000)
    worker_memory_mb: int = Field(default=3072, ge=256)

    # -- the service (hashguard serve) --
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    #: serve /metrics without a token; by default it needs one with the ``stats`` scope,
    #: since its series name banks, list sources and statistics labels (which lists a
    #: host uses is confidential). Only where /metrics is reachable from an internal
    #: network alone
    metrics_public: bool = False
    #: largest request body (uploads and JSON); beyond it, 413
    max_upload_mb: float = Field(default=50, gt=0)
    #: largest list file imported through POST /v1/banks/{name}/import
    max_list_mb: float = Field(default=2048, gt=0)
    #: hashing requests admitted at once per worker; beyond that, 503 at once
    queue_per_worker: int = Field(default=8, ge=1)
    #: hashing requests one token may have in flight, at most half of the slots
    #: (workers * queue_per_worker); beyond that, 429
    token_concurrency: int = Field(default=16, ge=1)
    #: upload bodies being received at once, before they ask for a hashing slot (a slot
    #: is held only once the whole body is in memory); beyond that 503, and one token
    #: may have at most half of them (429)
    receiving_uploads: int = Field(default=64, ge=1)
    #: bytes of upload bodies being received at once (a declared Content-Length counts
    #: from the start); one token at most half; beyond that 503/429
    receiving_mb: float = Field(default=256, gt=0)
    #: an upload body that sends nothing for this long is cut off with 408
    upload_read_timeout: float = Field(default=10.0, gt=0)
    #: and one that arrives slower than this on average (after upload_read_timeout)
    upload_min_bytes_per_second: int = Field(default=16_384, ge=1)
    #: hashes one token may look up per minute through /v1/lookup (anti-enumeration);
    #: a token may burst up to the larger of this and lookup_max_batch
    lookup_rate_per_minute: int = Field(default=6_000, ge=1)
    lookup_max_batch: int = Field(default=1_000, ge=1, le=100_000)
    #: tokens (by id) whose PDQ lookups answer the exact distance; others get matched
    #: or not (a distance lets a client read the listed hash bit by bit)
    lookup_distance_tokens: tuple[int, ...] = ()
    #: serve HMA's (OpenMediaMatch's) API under /hma for existing HMA clients (docs/hma.md)
    hma_compat: bool = False
    #: hosts whose URLs the HMA routes may fetch (``GET /hma/h/hash?url=``); empty: none
    hma_url_hosts: tuple[str, ...] = ()
    #: for HMA clients that cannot send a token: a secret path segment -> the token it
    #: stands for (``/hma/s/<secret>/m/raw_lookup`` acts as that token)
    hma_path_secrets: dict[str, SecretStr] = Field(default_factory=dict)
    #: a PDQ lookup within this many bits of one of the token's recent matched lookups
    #: (and not a repeat) is a close lookup: what reading a listed hash takes
    lookup_probe_radius: int = Field(default=16, ge=1, le=128)
    #: close lookups one token may make per lookup_probe_window_seconds; beyond, 429
    #: and an audited lookup.probing alert
    lookup_probe_budget: int = Field(default=32, ge=0)
    lookup_probe_window_seconds: float = Field(default=86_400.0, gt=0)
    #: recent PDQ lookups remembered per token (and, apart, recent matched ones)
    lookup_probe_memory: int = Field(default=4096, ge=1, le=1_000_000)
    #: how often a server checks the store for bank changes
    index_refresh_seconds: float = Field(default=1.0, gt=0)
    #: folders that scan runs started through the API may read (none: runs refused)
    scan_roots: tuple[Path, ...] = ()
    #: hashing processes for scan runs started through the API
    run_workers: int = Field(default=1, ge=1)

    # -- vetted services --
    #: base64 of 32 random bytes (`hashguard keys generate`); seals exchange credentials
    master_key: SecretStr | None = None
    #: a file holding the master key instead (default: $HASHGUARD_HOME/master.key, created)
    master_key_file: Path | None = None
    #: adapters that may be used, by name (None: every built-in; plugins must be named)
    adapters: tuple[str, ...] | None = None
    #: how often background jobs (`hashguard worker`, or `serve`) sync every enabled
    #: exchange (0: never); once per interval however many processes share the store
    exchange_sync_minutes: float = Field(default=60, ge=0)
    #: remote matchers consulted on every scan, by adapter name, with their settings
    #: (their credentials: `hashguard remote set-secret NAME KEY`, sealed in the store)
    remote: dict[str, dict[str, Any]] = Field(default_factory=dict)
    #: DEPRECATED: remote matchers' credentials in plaintext (TOML or environment). Still
    #: used, with a warning, where no sealed secret of the same key is stored
    remote_secrets: dict[str, dict[str, SecretStr]] = Field(default_factory=dict)
    #: time all remote matchers together may take for one file
    remote_budget_seconds: float = Field(default=10.0, gt=0, le=300)

    # -- evidence --
    #: days matched content is kept in the evidence vault where no jurisdiction rule
    #: applies: one year, the US preservation period after a CyberTipline report
    #: (18 U.S.C. 2258A(h) since the REPORT Act)
    evidence_retention_days: int = Field(default=365, ge=1, le=36_500)
    #: days by jurisdiction code, e.g. {"US": 365, "EU": 365}. The EU interim Regulation
    #: 2021/1232 caps keeping data at 12 months in general, so an EU rule should not
    #: exceed 365; the US one-year preservation is a minimum after a report
    evidence_retention_by_jurisdiction: dict[str, PositiveInt] = Field(default_factory=dict)
    #: the jurisdiction whose rule applies when a caller names none (the provider's own)
    evidence_jurisdiction: str = Field(default="US", min_length=1, max_length=16)
    #: where encrypted evidence files live (default: $HASHGUARD_HOME/evidence)
    evidence_dir: Path | None = None

    # -- review --
    #: a case counts as confirmed (and may be reported) only once two different people
    #: confirmed it; turn off only where one reviewer's word is enough by law and policy
    review_second_confirmation: bool = True
    #: the allow bank that gets a false positive's hashes when the reviewer names none
    review_allow_bank: str = Field(
        default="false-positives", pattern=r"^[a-z0-9][a-z0-9_.-]{0,99}$"
    )
    #: a reviewer who revealed this many originals within review_break_window_minutes is
    #: reminded to take a break before the next one (0: never)
    review_break_after_reveals: int = Field(default=10, ge=0)
    review_break_window_minutes: float = Field(default=60, gt=0)
    #: the exposure limit: at most this many reveals per reviewer within
    #: review_reveal_limit_window_minutes; further reveals are refused until the window
    #: passes or a lead grants more (0: no limit). Twice the break reminder by default:
    #: a reviewer who went on after the reminder stops after as many again
    review_reveal_limit: int = Field(default=20, ge=0)
    review_reveal_limit_window_minutes: float = Field(default=60, gt=0)
    #: how long a reveal lets the reviewer's session fetch the original
    review_reveal_seconds: float = Field(default=300, gt=0, le=3600)
    #: a video case's contact sheet: one frame every review_sheet_seconds, at most
    #: review_sheet_frames of them (spread over a longer video), plus every matched frame
    review_sheet_seconds: float = Field(default=1.0, gt=0)
    review_sheet_frames: int = Field(default=24, ge=1, le=200)

    # -- the review UI: sessions, sign-in --
    #: a session ends after this long without a request, and this long after sign-in
    ui_session_idle_minutes: float = Field(default=30, gt=0)
    ui_session_absolute_hours: float = Field(default=12, gt=0)
    #: session cookies carry Secure (browsers keep them over https and on localhost);
    #: turn off only for a plain-http test set-up on another host name
    ui_secure_cookies: bool = True
    #: sign-in rate limit: this many failures per account or per address within
    #: login_lockout_minutes lock further tries until the window passes
    login_max_failures: int = Field(default=5, ge=1)
    login_lockout_minutes: float = Field(default=15, gt=0)
    #: OpenID Connect (all three needed to offer it): the issuer URL (its
    #: /.well-known/openid-configuration is read), the client, and this server's
    #: external URL of /ui/oidc/callback as registered with the provider
    oidc_issuer: str | None = Field(default=None, pattern=r"^https?://")
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None
    oidc_redirect_url: str | None = Field(default=None, pattern=r"^https?://")
    oidc_scopes: str = "openid email profile"
    #: a claim listing the person's groups, and which group gives which role; without
    #: it, only people added beforehand (``hashguard users add --email``) may sign in
    oidc_roles_claim: str | None = None
    oidc_role_map: dict[str, Role] = Field(default_factory=dict)

    # -- statistics --
    #: the aggregate feed publishes no count under this (small-number suppression)
    stats_feed_k: int = Field(default=10, ge=1, le=1000)
    #: who the feed and the transparency reports say published them (the host's name)
    stats_publisher: str | None = Field(default=None, max_length=200)
    # -- actions --
    #: webhook endpoints, e.g. HASHGUARD_WEBHOOKS='[{"name": "ops", "url": "https://...",
    #: "secret": "whsec_...", "events": ["match.detected"]}]'
    webhooks: tuple[WebhookEndpointSettings, ...] = ()
    #: move files the scanner matched (action "act") on local disk into quarantine
    quarantine_local: bool = False
    #: where quarantined files go, mode 0700 (default: $HASHGUARD_HOME/quarantine)
    quarantine_dir: Path | None = None
    #: copy objects the scanner matched (action "act") in object storage to
    #: ``quarantine_bucket``, verify the copy by SHA-256, then delete or tag the original
    quarantine_objects: bool = False
    #: the bucket quarantined objects are copied to (create it with Object Lock enabled
    #: for a legal hold on each copy)
    quarantine_bucket: str | None = Field(default=None, min_length=3, max_length=63)
    #: the copies' key prefix in the quarantine bucket
    quarantine_prefix: str = Field(default="hashguard-quarantine/", max_length=200)
    #: what happens to the original once its copy is verified: "delete" (its version)
    #: or "tag" (hashguard-quarantine=<action id>; the platform stops serving it)
    quarantine_original: Literal["delete", "tag"] = "delete"
    #: put an Object Lock legal hold on each copy when the bucket supports it
    quarantine_legal_hold: bool = True
    #: the S3-compatible endpoint the server and the dispatcher use (scan runs,
    #: quarantine, evidence of retro-matched objects); default: AWS (or AWS_ENDPOINT_URL)
    s3_endpoint_url: str | None = Field(default=None, pattern=r"^https?://")
    #: what a server's scan runs may read in object storage: s3://bucket or
    #: s3://bucket/prefix (empty: no object storage; the CLI is not limited by it)
    scan_buckets: tuple[str, ...] = ()
    #: how long the dispatcher keeps retrying an action before it becomes a dead letter
    actions_retry_hours: float = Field(default=24, gt=0, le=24 * 90)
    #: backoff: a random wait up to min(max, base * 2**attempts) ("full jitter")
    actions_backoff_base_seconds: float = Field(default=10, gt=0)
    actions_backoff_max_seconds: float = Field(default=3600, gt=0)
    #: one webhook delivery's timeout; a dispatcher's lease on an action must outlast it
    webhook_timeout_seconds: float = Field(default=10, gt=0, le=300)
    actions_lease_seconds: float = Field(default=60, gt=0)
    #: how often an idle dispatcher looks for due actions
    actions_poll_seconds: float = Field(default=1.0, gt=0)

    # -- hotline referrals --
    #: hotlines this host refers confirmed cases to, by hand on their web forms: built-in
    #: names switch them on (HASHGUARD_REFERRAL_HOTLINES='["iwf", "eokm", "bee-secure"]');
    #: in TOML a table per hotline may override a built-in's fields or add another
    #: hotline ([referral_hotlines.name] name, form_url, country, notes)
    referral_hotlines: dict[str, HotlineSettings] = Field(default_factory=dict)

    # -- background jobs --
    #: how often background jobs run the evidence retention job (0: never; then run
    #: `hashguard evidence retention run` yourself)
    retention_run_hours: float = Field(default=24, ge=0)
    #: keep the hashes (never the content) of every checked item, with its identity and
    #: the bank versions it was checked against, for retro-matching (`hashguard retro-match`)
    keep_signals: bool = False
    #: with keep_signals, a scan of object storage skips objects whose (bucket, key,
    #: version, etag) was already checked against the same bank versions
    scan_skip_checked: bool = True
    #: kept signals are forgotten this many days after they were checked
    keep_signals_days: int = Field(default=365, ge=1, le=3650)
    #: how often background jobs retro-match new bank entries against kept signals
    #: (0: never; then run `hashguard retro-match` yourself); only with keep_signals
    retro_match_minutes: float = Field(default=15, ge=0)
    #: a background job's lease: renewed while it runs; a killed process's job is taken
    #: over this long after its last renewal
    jobs_lease_seconds: float = Field(default=60, ge=1)

    @field_validator("referral_hotlines", mode="before")
    @classmethod
    def _known_hotlines(cls, value: Any) -> Any:
        return _hotlines(value)

    @field_validator("scan_buckets")
    @classmethod
    def _s3_addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            if not re.fullmatch(r"s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?", item):
                raise ValueError(f"not an s3://bucket or s3://bucket/prefix address: {item}")
        return value

    # -- reports (NCMEC CyberTipline) --
    #: how often background jobs resume the reports that are due (retries after a
    #: backoff, reports a crash interrupted) and, with auto_report, submit the reports
    #: of newly confirmed cases (0: never; then `hashguard reports submit` alone sends)
    reports_run_minutes: float = Field(default=1, ge=0)
    #: the reports job drafts and submits the report of every confirmed case with
    #: evidence that has none yet (off: a person runs `hashguard reports submit`)
    auto_report: bool = False
    #: a report whose retries failed for this long since its draft is the dead letter
    #: (`hashguard reports list --state failed`)
    reports_give_up_days: float = Field(default=3, gt=0, le=90)

    # -- DSA Art. 16 notices --
    #: configured notifiers whose notices go first, by key: in TOML
    #: [notice_notifiers.stopline] name = "BEE SECURE Stopline", kind = "hotline",
    #: tokens = ["stopline"] (the API tokens that send for it)
    notice_notifiers: dict[str, NotifierSettings] = Field(default_factory=dict)
    #: the platform's callback that resolves a notice's URL or content id to its content
    #: (a signed Standard Webhooks POST; unset: notices wait, `received`, until it is)
    notices_callback_url: str | None = Field(default=None, pattern=r"^https?://\S+$")
    #: the callback's Standard Webhooks secret (``whsec_`` + base64), both ways: hashguard
    #: signs its request with it and refuses an answer that is not signed with it
    notices_callback_secret: SecretStr | None = None
    notices_callback_timeout_seconds: float = Field(default=10, gt=0, le=300)
    #: the largest content a callback may hand back (base64 bytes or a local file)
    notices_max_content_mb: float = Field(default=32, gt=0, le=1024)
    #: folders the callback's ``location`` may name (a local path; nothing else is read,
    #: and nothing is ever fetched from a URL)
    notices_content_roots: tuple[Path, ...] = ()
    #: how often background jobs resolve due notices (0: never; `hashguard notices resolve`)
    notices_run_minutes: float = Field(default=1, ge=0)
    #: a failed resolution is retried after min(max, base * 2**attempts)
    notices_retry_base_seconds: float = Field(default=60, gt=0)
    notices_retry_max_seconds: float = Field(default=3600, gt=0)
    #: the public notice form at /notice (no account needed)
    notices_form: bool = True
    #: notices the public form takes from one IP address (per process, in memory)
    notices_form_per_minute: int = Field(default=5, ge=1)
    notices_form_per_day: int = Field(default=50, ge=1)
    # -- statements of reasons (DSA Art. 17) and the Transparency Database (Art. 24(5)) --
    #: how often background jobs file pending statements in the Transparency Database
    #: (0: never; then `hashguard statements submit` alone sends). It does nothing while
    #: the sink is off (`hashguard statements settings --tdb`): only online platforms file
    statements_run_minutes: float = Field(default=1, ge=0)

    @field_validator("home")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @property
    def index_path(self) -> Path:
        """The match-index snapshot of this installation (a cache of the store's banks)."""
        return self.home / "index" / "matcher.snapshot"

    @property
    def default_master_key_file(self) -> Path:
        return self.home / "master.key"

    @property
    def resolved_quarantine_dir(self) -> Path:
        return self.quarantine_dir or self.home / "quarantine"

    @property
    def resolved_database_url(self) -> str:
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{self.home / 'hashguard.db'}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml = _config_file()
        if toml is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml))
        return tuple(sources)

    def masked(self) -> dict[str, Any]:
        """Settings as plain values with every secret masked, for display."""
        shown = self.model_dump(mode="json")
        for name, value in self:
            if isinstance(value, SecretStr):
                shown[name] = "**********"
        shown["remote_secrets"] = {
            adapter: dict.fromkeys(values, "**********")
            for adapter, values in self.remote_secrets.items()
        }
        return shown


def _config_file() -> Path | None:
    named = os.environ.get(CONFIG_ENV)
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{CONFIG_ENV} names {path}, which is not a file")
        return path
    home = os.environ.get("HASHGUARD_HOME")
    candidate = (Path(home).expanduser() if home else _default_home()) / "hashguard.toml"
    return candidate if candidate.is_file() else None
