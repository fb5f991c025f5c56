"""A minimal OpenID Connect provider on loopback, for the browser suite's sign-in tests.

It signs in whoever it was told to (``provider.email``) without asking: discovery document,
authorization endpoint (an immediate redirect back with a code), token endpoint (an RS256 id
token carrying the nonce), and the key set.  Nothing here is used outside tests.
"""

from __future__ import annotations

import secrets
import time
from typing import Any
from urllib.parse import urlencode

from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

CLIENT_ID = "credly-ops-e2e"
CLIENT_SECRET = "e2e-client-secret"


class Provider:
    def __init__(self) -> None:
        self.key = RSAKey.generate_key(2048)
        public: dict[str, Any] = dict(self.key.as_dict(private=False))
        public.update(kid="e2e", use="sig", alg="RS256")
        self.jwks = {"keys": [public]}
        self.issuer = ""
        self.email = "viewer@example.com"
        #: the ``email_verified`` claim of the next sign-in; ``None`` leaves the claim out
        self.email_verified: object = True
        self.codes: dict[str, dict[str, Any]] = {}

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self.discovery),
                Route("/authorize", self.authorize),
                Route("/token", self.token, methods=["POST"]),
                Route("/jwks", self.keys),
                Route("/userinfo", self.userinfo),
            ]
        )

    async def discovery(self, request: Request) -> Response:
        base = self.issuer
        return JSONResponse(
            {
                "issuer": base,
                "authorization_endpoint": f"{base}/authorize",
                "token_endpoint": f"{base}/token",
                "jwks_uri": f"{base}/jwks",
                "userinfo_endpoint": f"{base}/userinfo",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": ["openid", "email", "profile"],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_basic",
                    "client_secret_post",
                ],
            }
        )

    async def authorize(self, request: Request) -> Response:
        q = request.query_params
        code = secrets.token_urlsafe(16)
        self.codes[code] = {
            "nonce": q.get("nonce"),
            "email": self.email,
            "email_verified": self.email_verified,
        }
        query = urlencode({"code": code, "state": q.get("state", "")})
        return RedirectResponse(f"{q['redirect_uri']}?{query}", status_code=302)

    async def token(self, request: Request) -> Response:
        form = await request.form()
        grant = self.codes.pop(str(form.get("code")), None)
        if grant is None:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": grant["email"],
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 3600,
            "email": grant["email"],
            "name": grant["email"].split("@")[0],
        }
        if grant["email_verified"] is not None:
            claims["email_verified"] = grant["email_verified"]
        if grant["nonce"]:
            claims["nonce"] = grant["nonce"]
        id_token = jwt.encode({"alg": "RS256", "kid": "e2e"}, claims, self.key)
        return JSONResponse(
            {
                "access_token": secrets.token_urlsafe(16),
                "token_type": "Bearer",
                "expires_in": 3600,
                "id_token": id_token,
            }
        )

    async def keys(self, request: Request) -> Response:
        return JSONResponse(self.jwks)

    async def userinfo(self, request: Request) -> Response:
        return JSONResponse({"sub": self.email, "email": self.email})
