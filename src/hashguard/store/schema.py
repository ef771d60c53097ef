"""Table definitions. Changing them needs a new Alembic migration (tests compare the two)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
Id = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

banks = Table(
    "banks",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("pdq_threshold", Integer, nullable=False),
    Column("source", Text),
    Column("licence", Text),
    Column("version", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("imported_at", DateTime(timezone=True)),
    # policy (domain.policy.BankPolicy): NULL auto = PDQ never acts on its own,
    # NULL review = the bank's pdq_threshold
    Column("auto_max_distance", Integer, server_default="10"),
    Column("review_max_distance", Integer),
    Column("exact_action", String(16), nullable=False, server_default="act"),
    Column("shadow", Boolean, nullable=False, server_default=false()),
    # vPDQ: a video matches when these shares of its and the listed video's frames match
    Column("vpdq_query_percent", Float, nullable=False, server_default="80"),
    Column("vpdq_compared_percent", Float, nullable=False, server_default="0"),
)

bank_entries = Table(
    "bank_entries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("bank_id", Id, ForeignKey("banks.id", ondelete="CASCADE"), nullable=False),
    Column("algorithm", String(16), nullable=False),
    Column("value", String(64), nullable=False),
    Column("entry_id", Text),
    Column("category", Text),
    Column("meta", JSON(none_as_null=True)),
    Column("added_at", DateTime(timezone=True), nullable=False),
    Column("added_version", Text),
    Column("removed_at", DateTime(timezone=True)),
    Column("removed_version", Text),
    # The bank_state.change_seq of the transaction that last added, changed or removed
    # the entry: match indexes catch up with "change_seq > what I have seen".
    Column("change_seq", BigInteger, nullable=False, server_default="0"),
    UniqueConstraint("bank_id", "algorithm", "value", name="uq_bank_entries_signal"),
    Index("ix_bank_entries_lookup", "algorithm", "value"),
    Index("ix_bank_entries_change_seq", "change_seq"),
    # an exchange's deletion may name only its entry id
    Index("ix_bank_entries_bank_id", "bank_id", "entry_id"),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False),
    # SHA-256 of the secret: tokens are 256-bit random, so a fast hash is enough.
    Column("secret_sha256", String(64), nullable=False, unique=True),
    Column("scopes", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
    Column("last_used_at", DateTime(timezone=True)),
    #: the person a token acts for (case decisions need one); none: a service token
    Column("user_id", Id, ForeignKey("users.id")),
    #: the tenant of the hash check service it belongs to; none: the operator's own
    Column("tenant_id", Id, ForeignKey("tenants.id")),
)

#: Tenants of the hash check service (``store.tenants``).
tenants = Table(
    "tenants",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("contact", String(320), nullable=False),
    Column("quota_per_day", BigInteger, nullable=False),
    Column("rate_per_second", Float),
    Column("state", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

#: A tenant's lookups per UTC day: the row its quota is counted on (one atomic update
#: per call) and the numbers its own view and the statistics show.
tenant_usage = Table(
    "tenant_usage",
    metadata,
    Column("tenant_id", Id, ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("calls", BigInteger, nullable=False),
    Column("hashes", BigInteger, nullable=False),
    Column("matched", BigInteger, nullable=False),
    #: the quota was reached this day (its audit entry is written once)
    Column("refused", BigInteger, nullable=False, server_default="0"),
)

#: Configured exchanges: the adapter, its settings, its credentials sealed with the
#: master key (bound to the exchange's name), its checkpoint and its sync lease.
exchanges = Table(
    "exchanges",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("adapter", String(40), nullable=False),
    Column("bank_id", Id, ForeignKey("banks.id", ondelete="CASCADE"), nullable=False),
    Column("settings", JSON, nullable=False),
    Column("credential_names", JSON, nullable=False),
    Column("credentials", LargeBinary),
    Column("enabled", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("checkpoint", Text),
    Column("last_started_at", DateTime(timezone=True)),
    Column("last_success_at", DateTime(timezone=True)),
    Column("last_error", Text),
    Column("upserted", BigInteger, nullable=False),
    Column("removed", BigInteger, nullable=False),
    Column("skipped", BigInteger, nullable=False),
    # one sync at a time across every process: whoever holds an unexpired lease
    Column("lease_owner", String(200)),
    Column("lease_until", DateTime(timezone=True)),
    # review decisions told back to the exchange (off until switched on)
    Column("feedback", Boolean, nullable=False, server_default=false()),
    Column("feedback_reason", Text),
)

#: One row. ``change_seq`` is bumped (row-locked) by every transaction that changes bank
#: entries, so sequence numbers become visible in commit order; ``store_id`` names this
#: database, so an index snapshot is never applied to another one.
bank_state = Table(
    "bank_state",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("store_id", String(36), nullable=False),
    Column("change_seq", BigInteger, nullable=False),
)

bank_imports = Table(
    "bank_imports",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("bank_id", Id, ForeignKey("banks.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("version", Text),
    Column("filename", Text, nullable=False),
    Column("imported_at", DateTime(timezone=True), nullable=False),
    Column("rows", Integer, nullable=False),
    Column("added", Integer, nullable=False),
    Column("updated", Integer, nullable=False),
    Column("unchanged", Integer, nullable=False),
    Column("removed", Integer, nullable=False),
    Column("restored", Integer, nullable=False),
    Column("invalid", Integer, nullable=False),
)

#: The flood guard (``store.flood``): a bank's limit (no row: the defaults).
flood_limits = Table(
    "flood_limits",
    metadata,
    Column("bank_id", Id, ForeignKey("banks.id", ondelete="CASCADE"), primary_key=True),
    # NULL: the guard is off for this bank
    Column("max_items", Integer),
    Column("window_seconds", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

#: One row per entry that ever matched: the row each observation of the entry updates
#: first (it orders concurrent observers), and the flag that pauses it, if any.
flood_entries = Table(
    "flood_entries",
    metadata,
    Column("entry_ref", Id, ForeignKey("bank_entries.id", ondelete="CASCADE"), primary_key=True),
    Column("bank_id", Id, ForeignKey("banks.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("flag_id", BigInteger),
    Column("observed_at", DateTime(timezone=True), nullable=False),
)

#: The distinct content items (SHA-256) each entry matched, pruned past the window.
flood_seen = Table(
    "flood_seen",
    metadata,
    Column("entry_ref", Id, ForeignKey("bank_entries.id", ondelete="CASCADE"), primary_key=True),
    Column("sha256", String(64), primary_key=True),
    Column("seen_at", DateTime(timezone=True), nullable=False),
    Index("ix_flood_seen_entry_seen", "entry_ref", "seen_at"),
)

#: Every flag raised, with how it ended: kept when the entry or its bank is deleted
#: (statistics count them), so no foreign keys.
flood_flags = Table(
    "flood_flags",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("entry_ref", BigInteger, nullable=False),
    Column("bank_id", BigInteger, nullable=False),
    Column("bank", String(100), nullable=False),
    Column("entry_id", Text),
    Column("category", Text),
    Column("state", String(16), nullable=False),
    Column("flagged_at", DateTime(timezone=True), nullable=False),
    Column("distinct_items", Integer, nullable=False),
    Column("max_items", Integer, nullable=False),
    Column("window_seconds", Integer, nullable=False),
    Column("paused_matches", BigInteger, nullable=False),
    Column("last_paused_at", DateTime(timezone=True)),
    Column("resolved_at", DateTime(timezone=True)),
    Column("resolved_by", String(200)),
    Index("ix_flood_flags_state", "state"),
    Index("ix_flood_flags_flagged_at", "flagged_at"),
)

scan_runs = Table(
    "scan_runs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("roots", JSON, nullable=False),
    Column("resume_key", String(64), nullable=False, index=True),
    Column("options", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("pid", Integer),
    Column("host", Text),
    # objects left out because they were already checked against the same bank
    # versions (an incremental rescan of object storage)
    Column("skipped", Integer, nullable=False, server_default="0"),
)

scan_results = Table(
    "scan_results",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("run_id", Id, ForeignKey("scan_runs.id", ondelete="CASCADE"), nullable=False),
    # Paths can exceed what a B-tree key may hold; uniqueness goes through their digest.
    Column("path_key", String(64), nullable=False),
    Column("path", Text, nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("reason", Text),
    Column("size", BigInteger),
    Column("md5", String(32)),
    Column("sha1", String(40)),
    Column("sha256", String(64)),
    Column("pdq", JSON),
    Column("image_format", String(16)),
    Column("width", Integer),
    Column("height", Integer),
    Column("matches", JSON),
    # remote matchers' answers; a match's raw response is kept as evidence
    Column("remote", JSON),
    Column("scanned_at", DateTime(timezone=True), nullable=False),
    # the policy's decision (domain.policy.Decision as JSON) and its action, for counting
    Column("decision", JSON),
    Column("action", String(16)),
    # an object-storage object's identity (domain.objects.ObjectRef); NULL for a file
    Column("object_bucket", String(255)),
    Column("object_key", Text),
    Column("object_version", String(1024)),
    Column("object_etag", String(200)),
    UniqueConstraint("run_id", "path_key", name="uq_scan_results_path"),
    Index("ix_scan_results_run_outcome", "run_id", "outcome"),
    Index("ix_scan_results_object", "object_bucket", "object_key"),
)

#: The audit log: append-only, each entry chained to the one before by its hash.
audit_events = Table(
    "audit_events",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(100), nullable=False),
    Column("subject", String(300)),
    Column("details", JSON, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

#: One row: the audit log's head. Appenders lock it (so the chain never forks) and
#: move it with every append (so a truncated tail shows).
audit_state = Table(
    "audit_state",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("head_hash", String(64), nullable=False),
)

#: Evidence vault items: clear metadata, the context sealed with the item's data key, and
#: that data key wrapped by the master key (bound to the item id). The encrypted bytes
#: live in files, never here. Destroying an item erases ``data_key`` and ``context``
#: (crypto-erasure) and keeps the metadata as the record that it existed.
evidence_items = Table(
    "evidence_items",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("retain_until", DateTime(timezone=True), nullable=False),
    Column("jurisdiction", String(16), nullable=False),
    Column("legal_hold", Boolean, nullable=False),
    Column("hold_reason", Text),
    Column("held_at", DateTime(timezone=True)),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("summary", JSON, nullable=False),
    Column("data_key", LargeBinary),
    Column("context", LargeBinary),
    Column("destroyed_at", DateTime(timezone=True)),
    Column("destroyed_by", Text),
    Column("destroy_reason", Text),
    Index("ix_evidence_items_retain_until", "retain_until"),
)

#: Review cases: one per content item (``content_key``, the SHA-256 of its bytes) with
#: every match of it. ``version`` grows with each change (optimistic concurrency).
cases = Table(
    "cases",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("content_key", String(64), nullable=False, unique=True),
    Column("content_id", Text),
    Column("uploader_id", Text),
    Column("url", Text),
    Column("sources", JSON, nullable=False),
    Column("signals", JSON),
    Column("matches", JSON, nullable=False),
    Column("remote", JSON, nullable=False),
    Column("decision", JSON, nullable=False),
    Column("state", String(32), nullable=False),
    Column("assignee", String(200)),
    Column("confirmers", JSON, nullable=False),
    Column("evidence_id", String(36)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("version", Integer, nullable=False),
    Index("ix_cases_state", "state", "id"),
    Index("ix_cases_assignee", "assignee"),
)

#: Each case's history: who changed what, when, from which state to which, and why.
case_events = Table(
    "case_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("case_id", Id, ForeignKey("cases.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("from_state", String(32)),
    Column("to_state", String(32)),
    Column("reason", Text),
    Column("details", JSON, nullable=False),
)

#: The transactional outbox: actions written in the same transaction as the decision that
#: caused them, delivered at least once by the dispatcher (hashguard.actions).
action_outbox = Table(
    "action_outbox",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    #: 32 on PostgreSQL: ``object_quarantine`` is 17 characters (migration 0031); SQLite
    #: keeps any length, and its table stays as it was created
    Column("kind", String(32).with_variant(String(16), "sqlite"), nullable=False),
    Column("event", String(64)),
    Column("target", String(100)),
    Column("idempotency_key", String(100), nullable=False, unique=True),
    Column("subject", String(300)),
    Column("payload", JSON, nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_error", Text),
    Column("delivered_at", DateTime(timezone=True)),
    Column("dead_at", DateTime(timezone=True)),
    #: set when a dead entry is put back: the retry horizon counts from here
    Column("retried_at", DateTime(timezone=True)),
    Column("lease_owner", String(200)),
    Column("lease_until", DateTime(timezone=True)),
    Index("ix_action_outbox_due", "state", "next_attempt_at"),
)

#: Files moved into quarantine: where from (exact bytes and printable), where to, and the
#: file's hash, size, mode and owner, so it can be restored after a false positive.
quarantine_records = Table(
    "quarantine_records",
    metadata,
    Column("action_id", Id, ForeignKey("action_outbox.id"), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("original_path", Text, nullable=False),
    Column("original_path_raw", LargeBinary, nullable=False),
    Column("quarantine_path", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("mode", Integer, nullable=False),
    Column("uid", Integer, nullable=False),
    Column("gid", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("quarantined_at", DateTime(timezone=True)),
    Column("restored_at", DateTime(timezone=True)),
    Column("restored_by", Text),
)

#: Objects quarantined in object storage: where the matched object was, where its
#: verified copy went, how it is held there, and what happened to the original.
object_quarantines = Table(
    "object_quarantines",
    metadata,
    Column("action_id", Id, ForeignKey("action_outbox.id"), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("bucket", String(255), nullable=False),
    Column("key", Text, nullable=False),
    Column("version_id", String(1024)),
    Column("etag", String(200)),
    Column("sha256", String(64), nullable=False, index=True),
    Column("size", BigInteger, nullable=False),
    Column("quarantine_bucket", String(255), nullable=False),
    Column("quarantine_key", Text, nullable=False),
    Column("quarantine_version_id", String(1024)),
    # "legal_hold", or "none" with ``lock_note`` saying why
    Column("lock", String(16), nullable=False),
    Column("lock_note", Text),
    # "delete" or "tag": what is done to the original once the copy is verified
    Column("original", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("quarantined_at", DateTime(timezone=True)),
    Column("restored_at", DateTime(timezone=True)),
    Column("restored_by", Text),
)

#: People who sign in to the review UI (and own API tokens that decide cases). The
#: password is an argon2 hash; ``oidc_subject`` is ``<issuer> <sub>``.
users = Table(
    "users",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("email", String(320), unique=True),
    Column("display_name", String(200)),
    Column("password_hash", Text),
    Column("oidc_subject", String(600), unique=True),
    Column("disabled", Boolean, nullable=False, server_default=false()),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

#: Signed-in browsers: the SHA-256 of the cookie's secret, never the secret.
ui_sessions = Table(
    "ui_sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("user_id", Id, ForeignKey("users.id"), nullable=False, index=True),
    Column("csrf_token", String(64), nullable=False),
    Column("method", String(16), nullable=False),
    Column("ip", String(64)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_seen_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
)

#: Failed sign-ins by key (``user:<name>``, ``ip:<address>``), for the login rate limit.
login_failures = Table(
    "login_failures",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("key", String(200), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_login_failures_key_at", "key", "at"),
)

#: OpenID Connect sign-ins under way: state, nonce and PKCE verifier, used once.
oidc_pending = Table(
    "oidc_pending",
    metadata,
    Column("state", String(100), primary_key=True),
    Column("nonce", String(100), nullable=False),
    Column("code_verifier", String(200), nullable=False),
    Column("return_to", String(500)),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

#: Every reveal of a case's original bytes, for exposure counts and break reminders
#: (the audit log holds the same fact, chained).
reveals = Table(
    "reveals",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("user_id", Id, ForeignKey("users.id"), nullable=False),
    Column("case_id", Id, ForeignKey("cases.id"), nullable=False),
    Column("session_id", String(64)),
    Column("at", DateTime(timezone=True), nullable=False),
    #: the revealed frame of a video, by its time in milliseconds (NULL: the whole content)
    Column("frame_ms", BigInteger),
    Index("ix_reveals_user_at", "user_id", "at"),
)

#: Credentials of remote matchers (``hashguard remote set-secret``), one row per adapter
#: and key, each sealed with the master key and bound to ``<name>:<key>``.
remote_secrets = Table(
    "remote_secrets",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(40), nullable=False),
    Column("key", String(100), nullable=False),
    Column("sealed", LargeBinary, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("name", "key", name="uq_remote_secrets_name_key"),
)

#: Extra reveals a lead granted a reviewer beyond the exposure limit, each until its
#: ``expires_at`` (the audit log holds the same fact, chained).
reveal_grants = Table(
    "reveal_grants",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("user_id", Id, ForeignKey("users.id"), nullable=False),
    Column("extra", Integer, nullable=False),
    Column("granted_by", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index("ix_reveal_grants_user_expires", "user_id", "expires_at"),
)

#: Named leases of background jobs (``store.leases``): who may run a job now, until
#: when, and when it last finished, so processes sharing a store run each job once.
leases = Table(
    "leases",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("holder", String(200)),
    Column("acquired_at", DateTime(timezone=True)),
    Column("expires_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("completed_at", DateTime(timezone=True)),
    Column("completed_by", String(200)),
)

#: Reports to a national channel (``reports/``), at most one per case and sink. ``intent``
#: names a remote call started and not yet answered on record (a crash in between).
reports = Table(
    "reports",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("case_id", Id, ForeignKey("cases.id"), nullable=False),
    Column("sink", String(40), nullable=False),
    Column("environment", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("remote_id", String(100)),
    Column("intent", String(100)),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", DateTime(timezone=True)),
    Column("last_error", Text),
    Column("receipt", JSON),
    Column("data_key", LargeBinary, nullable=False),
    Column("leased_until", DateTime(timezone=True)),
    Column("lease_owner", String(100)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("version", Integer, nullable=False),
    UniqueConstraint("case_id", "sink", name="uq_reports_case_id_sink"),
    Index("ix_reports_state", "state"),
)

report_files = Table(
    "report_files",
    metadata,
    Column("report_id", Id, ForeignKey("reports.id", ondelete="CASCADE"), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("evidence_id", String(36), nullable=False),
    Column("name", String(200), nullable=False),
    Column("md5", String(32), nullable=False),
    Column("state", String(16), nullable=False),
    Column("file_id", String(100)),
    Column("details", JSON, nullable=False),
)

#: Every step of a report: what was sent and answered, the bodies sealed with the
#: report's data key (``evidence.vault.seal_part``), only the step and code in clear.
report_steps = Table(
    "report_steps",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("report_id", Id, ForeignKey("reports.id", ondelete="CASCADE"), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("step", String(40), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("code", Integer),
    Column("detail", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("part", String(36)),
    Column("request", LargeBinary),
    Column("response", LargeBinary),
    Index("ix_report_steps_report_id", "report_id"),
)

#: A sink's settings (``hashguard reports settings``): non-secret values in ``settings``,
#: credentials sealed with the master key bound to ``report:<sink>:<key>``.
report_settings = Table(
    "report_settings",
    metadata,
    Column("sink", String(40), primary_key=True),
    Column("settings", JSON, nullable=False),
    Column("sealed", JSON, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

#: Hotline referrals (``review/referrals.py``): tasks to file a confirmed case by hand on
#: a hotline's web form. At most one open or done task per case and hotline (the partial
#: unique index); a cancelled one may be followed by a new one. ``facts`` are what the
#: person pastes (the content's own hashes, never a list's).
referral_tasks = Table(
    "referral_tasks",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("case_id", Id, ForeignKey("cases.id"), nullable=False),
    Column("hotline", String(40), nullable=False),
    Column("form_url", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("facts", JSON, nullable=False),
    Column("reference", String(200)),
    Column("cancel_reason", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("closed_at", DateTime(timezone=True)),
    Column("closed_by", String(200)),
    Index("ix_referral_tasks_case_id", "case_id"),
    Index("ix_referral_tasks_state", "state", "id"),
    Index(
        "uq_referral_tasks_live",
        "case_id",
        "hotline",
        unique=True,
        sqlite_where=text("state IN ('open', 'done')"),
        postgresql_where=text("state IN ('open', 'done')"),
    ),
)

#: DSA Art. 16 notices (``notices/``): one row per notice; ``items`` (the URLs or content
#: ids and what resolving each found) change only with the notice's state. The resolver
#: takes due notices by (priority, received_at, id): configured notifiers first.
notices = Table(
    "notices",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("state", String(16), nullable=False),
    Column("category", String(60), nullable=False),
    Column("explanation", Text, nullable=False),
    Column("notifier", JSON, nullable=False),
    Column("good_faith", Boolean, nullable=False),
    Column("channel", String(16), nullable=False),
    Column("priority", Integer, nullable=False),
    Column("items", JSON, nullable=False),
    Column("token_id", Id),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", DateTime(timezone=True)),
    Column("last_error", Text),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("resolved_at", DateTime(timezone=True)),
    #: the resolver working on it (``NoticeStore.claim``) and until when
    Column("lease_owner", String(100)),
    Column("leased_until", DateTime(timezone=True)),
    Index("ix_notices_queue", "state", "priority", "received_at", "id"),
)

#: Statements of reasons (``statements/``): one per restriction, ``puid`` its stable id
#: (also at the Transparency Database); ``state`` where it stands there (a ``sending``
#: row is in a batch whose answer was not recorded: ``batch`` and ``lease_until`` say
#: which and until when).
statements = Table(
    "statements",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("puid", String(500), nullable=False, unique=True),
    Column("case_id", Id, ForeignKey("cases.id"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("reasons", JSON, nullable=False),
    Column("text", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", DateTime(timezone=True)),
    Column("batch", String(40)),
    Column("lease_until", DateTime(timezone=True)),
    Column("last_error", Text),
    Column("tdb_uuid", String(100)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("filed_at", DateTime(timezone=True)),
    Index("ix_statements_case_id", "case_id"),
    Index("ix_statements_state", "state", "id"),
)

#: What the host configured for statements (``statements``) and the Transparency
#: Database sink (``tdb``), its token sealed with the master key.
statement_settings = Table(
    "statement_settings",
    metadata,
    Column("name", String(40), primary_key=True),
    Column("settings", JSON, nullable=False),
    Column("sealed", JSON, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

#: Appeals (DSA Art. 20) against a restriction explained by a statement of reasons: one
#: per platform reference (the idempotency key), decided by a person who did not take
#: the first decision.
appeals = Table(
    "appeals",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("reference", String(200), nullable=False, unique=True),
    Column("case_id", Id, ForeignKey("cases.id"), nullable=False),
    #: one appeal per statement of reasons
    Column("statement_id", Id, ForeignKey("statements.id"), nullable=False, unique=True),
    Column("explanation", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("received_by", String(200), nullable=False),
    Column("decided_at", DateTime(timezone=True)),
    Column("decided_by", String(200)),
    Column("reason", Text),
    Column("decision_statement_id", Id, ForeignKey("statements.id")),
    Column("restoration", String(16)),
    Column("restoration_notes", JSON, nullable=False),
    #: the automatic retries of a ``pending`` or ``failed`` restoration (``jobs``)
    Column("restore_attempts", Integer, nullable=False, server_default="0"),
    Column("restore_after", DateTime(timezone=True)),
    Index("ix_appeals_case_id", "case_id"),
    Index("ix_appeals_state", "state", "id"),
)

#: Statistics (``store/stats.py``): one row per day, metric and labels (the label values
#: in ``domain.stats.LABELS`` order, as a JSON array), added to in the transaction of
#: the event it counts.
stats_counts = Table(
    "stats_counts",
    metadata,
    Column("day", Date, primary_key=True),
    Column("metric", String(40), primary_key=True),
    Column("labels", String(600), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

#: Measured times as daily histograms: how many ended on ``day`` in ``bucket``
#: (an index into ``domain.stats.TIMING_BOUNDS``).
stats_timings = Table(
    "stats_timings",
    metadata,
    Column("day", Date, primary_key=True),
    Column("timing", String(40), primary_key=True),
    Column("bucket", Integer, primary_key=True),
    Column("count", BigInteger, nullable=False),
)

#: The same counts summed by calendar month (``month``: its first day), written in the
#: same upsert as the daily rows: a year by month is a few thousand rows to read.
stats_counts_monthly = Table(
    "stats_counts_monthly",
    metadata,
    Column("month", Date, primary_key=True),
    Column("metric", String(40), primary_key=True),
    Column("labels", String(600), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

stats_timings_monthly = Table(
    "stats_timings_monthly",
    metadata,
    Column("month", Date, primary_key=True),
    Column("timing", String(40), primary_key=True),
    Column("bucket", Integer, primary_key=True),
    Column("count", BigInteger, nullable=False),
)

#: Kept signals (opt-in ``keep_signals``): the hashes of every checked item with its
#: identity and the banks' change sequence it was checked at, for retro-matching.
kept_signals = Table(
    "kept_signals",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("way", String(16), nullable=False),
    Column("checked_at", DateTime(timezone=True), nullable=False),
    Column("checked_seq", BigInteger, nullable=False),
    Column("run_id", Id),
    Column("path", Text),
    Column("object_bucket", String(255)),
    Column("object_key", Text),
    Column("object_version", String(1024)),
    Column("object_etag", String(200)),
    Column("content_id", Text),
    Column("request_id", Text),
    Column("size", BigInteger, nullable=False),
    Column("md5", String(32), nullable=False),
    Column("sha1", String(40), nullable=False),
    Column("sha256", String(64), nullable=False),
    # [[hex, quality], ...]: reference-mode PDQ hashes only
    Column("pdq", JSON, nullable=False),
    # [[hex, quality, timestamp], ...]: a video's reference vPDQ frames (None otherwise)
    Column("vpdq", JSON(none_as_null=True)),
    Index("ix_kept_signals_md5", "md5"),
    Index("ix_kept_signals_sha1", "sha1"),
    Index("ix_kept_signals_sha256", "sha256"),
    Index("ix_kept_signals_checked_at", "checked_at"),
    Index("ix_kept_signals_object", "object_bucket", "object_key"),
)

#: The retro-matcher's checkpoint: bank entries up to ``seq`` were matched against
#: every kept signal (one row, id 1).
retro_state = Table(
    "retro_state",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)
