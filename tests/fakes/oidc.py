"""A loopback OpenID Provider, written from OpenID Connect Core 1.0 (authorization code
flow), OpenID Connect Discovery 1.0, RFC 7517 (JWKS) and RFC 7636 (PKCE, S256).

* ``GET /.well-known/openid-configuration``: the discovery document.
* ``GET /jwks``: the public signing key (RSA, kid ``k1``).
* ``GET /authorize``: checks client_id, redirect_uri, response_type=code, scope with
  ``openid``, a state, a nonce and an S256 code_challenge; "signs in" ``person`` (the
  claims of whoever is at the provider) and answers 302 to the redirect URI with
  ``code`` and ``state``. With ``deny``, answers with ``error=access_denied``.
* ``POST /token``: checks the client (HTTP Basic, form-encoded per RFC 6749 2.3.1, or
  ``client_secret`` in the form), the code (one use, same redirect_uri) and the PKCE
  ``code_verifier`` against the challenge; answers an access token and an RS256-signed
  id_token with iss, sub, aud, exp, iat, auth_time, nonce and the person's claims.

``tamper`` spoils the next id_tokens for the tests: ``signature`` (a byte of the
signature flipped), ``other_key`` (signed by a key not in the JWKS, same kid),
``audience``, ``expired``, ``nonce``, ``issuer``.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode

from joserfc import jwt
from joserfc.jwk import RSAKey

from tests.fakes import FakeService, Recorded, Reply

KID = "k1"


@dataclass
class _Grant:
    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str
    claims: dict[str, Any]
    used: bool = False


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class FakeOidcProvider(FakeService):
    def __init__(self, client_id: str, client_secret: str, redirect_uri: str) -> None:
        super().__init__()
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uri = redirect_uri
        self.key = RSAKey.generate_key(2048, parameters={"kid": KID, "use": "sig"})
        self.other_key = RSAKey.generate_key(2048, parameters={"kid": KID, "use": "sig"})
        #: the claims of the person signed in at the provider (sub is required)
        self.person: dict[str, Any] = {"sub": "person-1"}
        #: how the next id_tokens are spoiled (see the module's docstring)
        self.tamper: set[str] = set()
        #: answer the authorization request with error=access_denied
        self.deny = False
        self.grants: dict[str, _Grant] = {}
        #: token requests refused, with the reason
        self.refusals: list[str] = []

    @property
    def issuer(self) -> str:
        return self.url

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": self.issuer + "/authorize",
            "token_endpoint": self.issuer + "/token",
            "jwks_uri": self.issuer + "/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": ["sub", "email", "email_verified", "preferred_username", "name"],
        }

    def answer(self, request: Recorded, behaviour: str) -> Reply:
        if behaviour == "server_error":
            return Reply.json(503, {"error": "temporarily_unavailable"})
        if request.method == "GET" and request.path == "/.well-known/openid-configuration":
            return Reply.json(200, self.discovery())
        if request.method == "GET" and request.path == "/jwks":
            return Reply.json(200, {"keys": [self.key.as_dict(private=False)]})
        if request.method == "GET" and request.path == "/authorize":
            return self._authorize(request)
        if request.method == "POST" and request.path == "/token":
            return self._token(request)
        return Reply.json(404, {"error": "not_found"})

    # -- authorization endpoint ---------------------------------------------------------

    def _authorize(self, request: Recorded) -> Reply:
        q = {k: v[0] for k, v in request.query.items()}
        if q.get("client_id") != self.client_id or q.get("redirect_uri") != self.redirect_uri:
            # never redirect to an unregistered URI (Core 3.1.2.6): an error page
            return Reply(status=400, body=b"unknown client or redirect_uri")
        state = q.get("state", "")
        problems = [
            q.get("response_type") != "code" and "response_type",
            "openid" not in q.get("scope", "").split() and "scope",
            not q.get("nonce") and "nonce",
            q.get("code_challenge_method") != "S256" and "code_challenge_method",
            not q.get("code_challenge") and "code_challenge",
        ]
        bad = [p for p in problems if p]
        if bad or self.deny:
            error = "access_denied" if self.deny else "invalid_request"
            return self._back({"error": error, "state": state})
        code = secrets.token_urlsafe(24)
        with self._lock:
            self.grants[code] = _Grant(
                client_id=self.client_id,
                redirect_uri=q["redirect_uri"],
                challenge=q["code_challenge"],
                nonce=q["nonce"],
                claims=dict(self.person),
            )
        return self._back({"code": code, "state": state})

    def _back(self, params: dict[str, str]) -> Reply:
        return Reply(status=302, headers={"Location": self.redirect_uri + "?" + urlencode(params)})

    # -- token endpoint -----------------------------------------------------------------

    def _client(self, request: Recorded, form: dict[str, str]) -> tuple[str, str] | None:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme == "Basic":
            try:
                user, _, password = base64.b64decode(value).decode().partition(":")
            except ValueError:
                return None
            return unquote(user), unquote(password)
        if "client_secret" in form:
            return form.get("client_id", ""), form["client_secret"]
        return None

    def _refuse(self, error: str, reason: str, status: int = 400) -> Reply:
        with self._lock:
            self.refusals.append(reason)
        return Reply.json(status, {"error": error, "error_description": reason})

    def _token(self, request: Recorded) -> Reply:
        form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
        if self._client(request, form) != (self.client_id, self.client_secret):
            return self._refuse("invalid_client", "client authentication failed", 401)
        if form.get("grant_type") != "authorization_code":
            return self._refuse("unsupported_grant_type", "grant_type")
        with self._lock:
            grant = self.grants.get(form.get("code", ""))
            if grant is not None and grant.used:
                grant = None
            if grant is not None:
                grant.used = True
        if grant is None:
            return self._refuse("invalid_grant", "unknown or used code")
        if form.get("redirect_uri") != grant.redirect_uri:
            return self._refuse("invalid_grant", "redirect_uri differs")
        verifier = form.get("code_verifier", "")
        if not 43 <= len(verifier) <= 128 or s256(verifier) != grant.challenge:
            return self._refuse("invalid_grant", "PKCE verification failed")
        return Reply.json(
            200,
            {
                "access_token": secrets.token_urlsafe(24),
                "token_type": "Bearer",
                "expires_in": 300,
                "id_token": self.id_token(grant),
            },
            **{"Cache-Control": "no-store"},
        )

    def id_token(self, grant: _Grant) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            **grant.claims,
            "iss": self.issuer,
            "aud": self.client_id,
            "iat": now,
            "exp": now + 300,
            "auth_time": now,
            "nonce": grant.nonce,
        }
        tamper = self.tamper
        if "audience" in tamper:
            claims["aud"] = "someone-else"
        if "expired" in tamper:
            claims["iat"], claims["exp"] = now - 900, now - 600
        if "nonce" in tamper:
            claims["nonce"] = "not-the-nonce"
        if "issuer" in tamper:
            claims["iss"] = "http://127.0.0.1:1"
        key = self.other_key if "other_key" in tamper else self.key
        token = jwt.encode({"alg": "RS256", "kid": KID}, claims, key)
        if "signature" in tamper:
            head, body, signature = token.split(".")
            raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
            raw[len(raw) // 2] ^= 0x01
            token = ".".join(
                [head, body, base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()]
            )
        return token
