"""Signing in through OpenID Connect (the authorization code flow with PKCE).

``begin`` makes a sign-in under way (``PendingOidc``: random state, nonce and PKCE
verifier, kept by the store and usable once within ``PENDING_SECONDS``) and
``OidcClient.authorization_url`` the provider's URL to send the browser to.
``OidcClient.identify`` exchanges the code (with the verifier and the client's
credentials) and validates the id_token against the provider's JWKS: signature with an
asymmetric algorithm the provider announces, ``iss``, ``aud`` (and ``azp`` when there
are several audiences), ``exp``, ``iat``, ``nonce``. ``admit`` then finds the person:

1. the person bound to ``<issuer> <sub>``;
2. else the person added beforehand with that e-mail address (only an address the
   provider says is verified), who is then bound to the subject;
3. else, with ``oidc_roles_claim`` set, a new person with the highest role the claim's
   groups map to through ``oidc_role_map`` (admin > lead > reviewer > auditor >
   viewer), named after ``preferred_username`` (or the address's local part);
4. else nobody: deny by default.

With ``oidc_roles_claim`` set the provider decides roles: each sign-in sets the role
from the claim, and someone none of whose groups maps to a role is refused. Disabled
people are refused. The discovery document and the JWKS are fetched with timeouts and
cached; only https URLs are used, except on loopback (tests and local set-ups).

authlib provides the protocol pieces (random tokens, the S256 challenge, the
authorization URL); the two HTTP calls are made with httpx directly and the id_token
is checked with joserfc.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import BadSignatureError, ExpiredTokenError, InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from hashguard.audit import record
from hashguard.domain.audit import AuditAction
from hashguard.domain.people import NAME_PATTERN, Role, User
from hashguard.settings import Settings
from hashguard.store import Store
from hashguard.store.people import PendingOidc, UserExists

#: a sign-in under way must come back within this long (background housekeeping forgets older ones)
PENDING_SECONDS = 600.0
#: how long the discovery document and the JWKS are kept before being read again
CACHE_SECONDS = 3600.0
HTTP_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
#: the most a provider's answer may weigh
MAX_RESPONSE_BYTES = 1 << 20
#: clock skew allowed on exp and iat
LEEWAY_SECONDS = 60
#: asymmetric algorithms only: never "none", never HMAC with the client secret
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
#: who records what a sign-in changes on a person (binding, role, creation)
ACTOR = "system:oidc"
#: roles from the strongest down: a person in several mapped groups gets the first
ROLE_ORDER = (Role.ADMIN, Role.LEAD, Role.REVIEWER, Role.AUDITOR, Role.VIEWER)


class OidcError(Exception):
    """A refused sign-in. ``reason`` is a short code for the audit log, ``detail`` what
    the person is told; ``refused`` means the provider vouched for the person but they
    may not sign in here (403), else the exchange itself failed (400)."""

    def __init__(
        self, reason: str, detail: str, *, subject: str | None = None, refused: bool = False
    ) -> None:
        super().__init__(detail)
        self.reason, self.detail, self.subject, self.refused = reason, detail, subject, refused


class OidcUnavailable(OidcError):
    """The provider could not be reached or answered nonsense (502)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Provider:
    """What the discovery document says."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    algorithms: tuple[str, ...]
    #: ``client_secret_basic`` or ``client_secret_post``
    auth_method: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Identity:
    """The validated id_token's claims."""

    issuer: str
    claims: Mapping[str, Any]

    @property
    def sub(self) -> str:
        return str(self.claims["sub"])

    @property
    def subject(self) -> str:
        """What ``users.oidc_subject`` holds: ``<issuer> <sub>``."""
        return f"{self.issuer} {self.sub}"

    @property
    def verified_email(self) -> str | None:
        email = self.claims.get("email")
        if isinstance(email, str) and "@" in email and self.claims.get("email_verified") is True:
            return email
        return None


def configured(settings: Settings) -> bool:
    """Whether single sign-on is offered: issuer, client id and callback URL set."""
    return bool(settings.oidc_issuer and settings.oidc_client_id and settings.oidc_redirect_url)


def check_url(url: str, what: str) -> str:
    """``url`` if it is https, or http on a loopback host; else ``OidcUnavailable``."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme == "https" and host:
        return url
    if parts.scheme == "http" and host in LOOPBACK:
        return url
    raise OidcUnavailable("insecure_url", f"the provider's {what} is not an https URL")


def begin(return_to: str | None, *, now: datetime | None = None) -> PendingOidc:
    """A new sign-in under way: random state and nonce, a PKCE verifier (RFC 7636:
    64 characters from the unreserved set)."""
    return PendingOidc(
        state=generate_token(43),
        nonce=generate_token(43),
        code_verifier=generate_token(64),
        return_to=return_to,
        created_at=now or datetime.now(UTC),
    )


def expired(pending: PendingOidc, now: datetime | None = None) -> bool:
    age = (now or datetime.now(UTC)) - pending.created_at
    return age > timedelta(seconds=PENDING_SECONDS)


def _json(response: httpx.Response, what: str) -> dict[str, Any]:
    if len(response.content) > MAX_RESPONSE_BYTES:
        raise OidcUnavailable("provider_answer", f"the provider's {what} is too large")
    try:
        found = response.json()
    except ValueError:
        found = None
    if not isinstance(found, dict):
        raise OidcUnavailable("provider_answer", f"the provider's {what} is not a JSON object")
    return found


def _str(document: Mapping[str, Any], key: str) -> str:
    value = document.get(key)
    if not isinstance(value, str) or not value:
        raise OidcUnavailable("discovery", f"the provider's discovery document lacks {key}")
    return value


class OidcClient:
    """The relying party for ``settings``: keeps the provider's discovery document
    and keys between sign-ins. One per app (``web.ui.auth`` keeps it in app.state)."""

    def __init__(self, settings: Settings) -> None:
        if not configured(settings):
            raise ValueError("OpenID Connect is not configured")
        assert settings.oidc_issuer is not None
        assert settings.oidc_client_id is not None
        assert settings.oidc_redirect_url is not None
        self.issuer = check_url(settings.oidc_issuer.rstrip("/"), "issuer")
        self.client_id = settings.oidc_client_id
        secret = settings.oidc_client_secret
        self.client_secret = secret.get_secret_value() if secret is not None else None
        self.redirect_url = settings.oidc_redirect_url
        self.scopes = settings.oidc_scopes
        self._provider: tuple[float, Provider] | None = None
        self._keys: tuple[float, KeySet] | None = None

    def _http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=HTTP_TIMEOUT, follow_redirects=False)

    async def _get(self, url: str, what: str) -> dict[str, Any]:
        try:
            async with self._http() as http:
                response = await http.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise OidcUnavailable(
                "provider_unreachable", f"the provider is unreachable: {exc}"
            ) from None
        if response.status_code != 200:
            raise OidcUnavailable(
                "provider_answer", f"the provider's {what} answered {response.status_code}"
            )
        return _json(response, what)

    async def provider(self) -> Provider:
        """The discovery document (cached for ``CACHE_SECONDS``)."""
        if self._provider is not None and time.monotonic() - self._provider[0] < CACHE_SECONDS:
            return self._provider[1]
        doc = await self._get(self.issuer + "/.well-known/openid-configuration", "discovery")
        if _str(doc, "issuer").rstrip("/") != self.issuer:
            raise OidcUnavailable("discovery", "the provider names another issuer")
        announced = doc.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = tuple(a for a in ALGORITHMS if a in announced)
        if not algorithms:
            raise OidcUnavailable("discovery", "the provider signs with no algorithm allowed here")
        methods = doc.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        found = Provider(
            issuer=_str(doc, "issuer"),
            authorization_endpoint=check_url(
                _str(doc, "authorization_endpoint"), "authorization endpoint"
            ),
            token_endpoint=check_url(_str(doc, "token_endpoint"), "token endpoint"),
            jwks_uri=check_url(_str(doc, "jwks_uri"), "JWKS URL"),
            algorithms=algorithms,
            auth_method="client_secret_basic"
            if "client_secret_basic" in methods
            else "client_secret_post",
        )
        self._provider = (time.monotonic(), found)
        return found

    async def keys(self, *, refresh: bool = False) -> KeySet:
        """The provider's signing keys (cached; ``refresh`` reads them again, for a key
        rotated in since)."""
        if (
            not refresh
            and self._keys is not None
            and time.monotonic() - self._keys[0] < CACHE_SECONDS
        ):
            return self._keys[1]
        provider = await self.provider()
        document = await self._get(provider.jwks_uri, "JWKS")
        try:
            keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError):
            raise OidcUnavailable("jwks", "the provider's JWKS holds no usable key") from None
        self._keys = (time.monotonic(), keys)
        return keys

    async def authorization_url(self, pending: PendingOidc) -> str:
        """Where to send the browser for ``pending``."""
        provider = await self.provider()
        url: str = prepare_grant_uri(
            provider.authorization_endpoint,
            client_id=self.client_id,
            response_type="code",
            redirect_uri=self.redirect_url,
            scope=self.scopes,
            state=pending.state,
            nonce=pending.nonce,
            code_challenge=create_s256_code_challenge(pending.code_verifier),
            code_challenge_method="S256",
        )
        return url

    async def identify(self, pending: PendingOidc, code: str) -> Identity:
        """Exchange ``code`` and validate the id_token; raises ``OidcError``."""
        provider = await self.provider()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_url,
            "code_verifier": pending.code_verifier,
            "client_id": self.client_id,
        }
        auth: httpx.BasicAuth | None = None
        if self.client_secret is not None:
            if provider.auth_method == "client_secret_basic":
                # RFC 6749 2.3.1: both form-encoded before Basic
                auth = httpx.BasicAuth(
                    quote(self.client_id, safe=""), quote(self.client_secret, safe="")
                )
            else:
                form["client_secret"] = self.client_secret
        try:
            async with self._http() as http:
                response = await http.post(
                    provider.token_endpoint,
                    data=form,
                    auth=auth,  # type: ignore[arg-type]
                    headers={"Accept": "application/json"},
                )
        except httpx.HTTPError as exc:
            raise OidcUnavailable(
                "provider_unreachable", f"the provider is unreachable: {exc}"
            ) from None
        if response.status_code != 200:
            error = ""
            try:
                body = response.json()
                error = str(body.get("error", ""))[:100] if isinstance(body, dict) else ""
            except ValueError:
                pass
            raise OidcError(
                "token_refused", f"the provider refused the code ({error or response.status_code})"
            )
        id_token = _json(response, "token answer").get("id_token")
        if not isinstance(id_token, str):
            raise OidcError("no_id_token", "the provider sent no id_token")
        return await self.validate(id_token, pending.nonce)

    async def validate(self, id_token: str, nonce: str) -> Identity:
        """The claims of ``id_token`` if it is signed by the provider for this client,
        current, and carries ``nonce``; else ``OidcError``."""
        provider = await self.provider()
        keys = await self.keys()
        algorithms = list(provider.algorithms)
        try:
            try:
                token = jwt.decode(id_token, keys, algorithms=algorithms)
            except InvalidKeyIdError:  # a key rotated in since the JWKS was read
                token = jwt.decode(id_token, await self.keys(refresh=True), algorithms=algorithms)
        except BadSignatureError:
            raise OidcError("bad_signature", "the id_token's signature is wrong") from None
        except (JoseError, ValueError):
            raise OidcError("bad_token", "the id_token is malformed or signed wrongly") from None
        claims = token.claims
        registry = jwt.JWTClaimsRegistry(
            leeway=LEEWAY_SECONDS,
            iss={"essential": True, "value": provider.issuer},
            aud={"essential": True, "value": self.client_id},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
            nonce={"essential": True, "value": nonce},
        )
        try:
            registry.validate(claims)
        except ExpiredTokenError:
            raise OidcError("expired_token", "the id_token has expired") from None
        except JoseError as exc:
            claim = getattr(exc, "claim", None) or "a claim"
            raise OidcError(
                f"bad_{claim}" if isinstance(claim, str) and claim.isalpha() else "bad_claim",
                f"the id_token's {claim} is wrong",
            ) from None
        audience = claims["aud"]
        if isinstance(audience, list) and len(audience) > 1 and claims.get("azp") != self.client_id:
            raise OidcError("bad_azp", "the id_token was issued to another client")
        iat = claims["iat"]
        if not math.isfinite(iat) or iat < time.time() - PENDING_SECONDS - LEEWAY_SECONDS:
            raise OidcError("stale_token", "the id_token is too old")
        return Identity(issuer=provider.issuer.rstrip("/"), claims=dict(claims))


# -- who the person is ------------------------------------------------------------------


def mapped_role(settings: Settings, claims: Mapping[str, Any]) -> Role | None:
    """The strongest role ``oidc_role_map`` gives the groups in ``oidc_roles_claim``."""
    if not settings.oidc_roles_claim:
        return None
    value = claims.get(settings.oidc_roles_claim)
    groups = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    roles = {
        settings.oidc_role_map[g]
        for g in groups
        if isinstance(g, str) and g in settings.oidc_role_map
    }
    return next((r for r in ROLE_ORDER if r in roles), None)


def _base_name(identity: Identity) -> str:
    raw = identity.claims.get("preferred_username")
    if not isinstance(raw, str) or not raw.strip():
        email = identity.claims.get("email")
        raw = email.split("@", 1)[0] if isinstance(email, str) else ""
    cleaned = re.sub(r"[^A-Za-z0-9._@-]+", "-", raw.strip())
    cleaned = re.sub(r"^[^A-Za-z0-9]+", "", cleaned)[:90].rstrip("-._@")
    return cleaned or "user"


def _create(store: Store, identity: Identity, role: Role) -> User:
    base = _base_name(identity)
    email = identity.verified_email
    if email is not None and store.people.find_by_email(email) is not None:
        email = None  # someone else has it (bound to another subject)
    name = display = identity.claims.get("name")
    for n in range(1, 1000):
        name = base if n == 1 else f"{base}-{n}"
        assert re.fullmatch(NAME_PATTERN, name)
        if store.people.find_user(name) is not None:
            continue
        try:
            return store.people.create_user(
                name,
                role,
                email=email,
                display_name=display[:200] if isinstance(display, str) else None,
                oidc_subject=identity.subject,
            )
        except UserExists:
            if store.people.find_by_oidc(identity.subject) is not None:
                raise  # a concurrent sign-in made them
            continue
    raise OidcError("no_name", "no free name for this person", refused=True)


def admit(store: Store, settings: Settings, identity: Identity) -> User:
    """The person ``identity`` signs in as (found, bound or created; roles set from the
    claim when configured), audited; raises ``OidcError`` when they may not sign in.
    Blocking: call it from a worker thread."""
    subject = identity.subject
    role = mapped_role(settings, identity.claims)
    governed = bool(settings.oidc_roles_claim)
    user = store.people.find_by_oidc(subject)
    if user is None and identity.verified_email is not None:
        by_email = store.people.find_by_email(identity.verified_email)
        if by_email is not None:
            if by_email.oidc_subject is not None:
                raise OidcError(
                    "email_bound_elsewhere",
                    "this e-mail address belongs to a person bound to another account",
                    subject=by_email.actor,
                    refused=True,
                )
            user = by_email
    if user is not None and user.disabled:
        raise OidcError("disabled", "this account is disabled", subject=user.actor, refused=True)
    if governed and role is None:
        raise OidcError(
            "no_role",
            "your groups give you no role here: ask an administrator",
            subject=user.actor if user else None,
            refused=True,
        )
    if user is None:
        if role is None:
            raise OidcError(
                "unknown_person",
                "you have no account here: ask an administrator to add you",
                refused=True,
            )
        user = _create(store, identity, role)
        record(
            store,
            ACTOR,
            AuditAction.USER_CREATED,
            user.actor,
            role=str(user.role),
            email=user.email,
            oidc_subject=subject,
        )
        return user
    changes: dict[str, Any] = {}
    if user.oidc_subject is None:
        changes["oidc_subject"] = subject
    if governed and role is not None and role != user.role:
        changes["role"] = role
    if changes:
        user = store.people.update_user(user.id, **changes)
        record(
            store,
            ACTOR,
            AuditAction.USER_UPDATED,
            user.actor,
            **{k: str(v) for k, v in changes.items()},
        )
    return user
