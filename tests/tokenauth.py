"""Token auth for a real distribution registry, plus a Google OAuth endpoint test double.

``TokenService`` is a small but real implementation of the docker token protocol: it checks Basic
credentials (GET) or a refresh token (POST, OAuth2 ``grant_type=refresh_token``), grants the
intersection of the requested scopes with each user's rights, and signs RS256 JWTs with an ``x5c``
certificate chain that distribution 2.8 verifies against ``rootcertbundle``.

``GoogleTokenEndpointDoubleForTests`` stands in for Google's OAuth2 token endpoint (unreachable
here): google-auth's service-account credentials POST a signed JWT assertion to it; the double
verifies the signature with the account's public key and hands out short-lived access tokens.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from loopback import loopback_host, start_loopback_server, stop_loopback_server

ISSUER = "test-token-issuer"
SERVICE = "test-registry"
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"  # what Google's endpoint expects in "aud"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _cert(
    subject: str, key: rsa.RSAPrivateKey, issuer: str, issuer_key: rsa.RSAPrivateKey, ca: bool
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(issuer_key, hashes.SHA256())
    )


@dataclass
class User:
    password: str
    actions: tuple[str, ...] = ("pull", "push")


@dataclass
class TokenService:
    """``with TokenService(tmp) as ts:`` -- ``ts.realm`` and ``ts.ca_bundle`` go in the registry config."""

    workdir: Path
    users: dict[str, User] = field(default_factory=dict)
    refresh_tokens: dict[str, str] = field(default_factory=dict)
    password_check: Callable[[str, str], bool] | None = None
    lifetime: int = 300
    requests: list[dict[str, Any]] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    def __post_init__(self) -> None:
        ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        ca = _cert("test token CA", ca_key, "test token CA", ca_key, ca=True)
        leaf = _cert("test token signer", self._key, "test token CA", ca_key, ca=False)
        self._x5c = [
            base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in (leaf, ca)
        ]
        self.ca_bundle = self.workdir / "token-ca.pem"
        self.ca_bundle.write_bytes(ca.public_bytes(serialization.Encoding.PEM))

    @property
    def realm(self) -> str:
        assert self._server is not None
        return f"http://{loopback_host(self._server)}/token"

    def __enter__(self) -> TokenService:
        service = self

        class Handler(_TokenHandler):
            owner = service

        self._server = start_loopback_server(Handler)
        return self

    def __exit__(self, *exc: object) -> None:
        stop_loopback_server(self._server)

    def authenticate(self, username: str, password: str) -> str | None:
        user = self.users.get(username)
        if user is not None and user.password == password:
            return username
        if self.password_check is not None and self.password_check(username, password):
            return username
        return None

    def grant(self, subject: str, scopes: list[str]) -> list[dict[str, object]]:
        rights = self.users[subject].actions if subject in self.users else ("pull", "push")
        if not subject:
            rights = ()
        access: list[dict[str, object]] = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            granted = [a for a in actions.split(",") if a in rights]
            if kind == "repository" and granted:
                access.append({"type": kind, "name": name, "actions": granted})
        return access

    def sign(self, subject: str, access: list[dict[str, object]]) -> str:
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": self._x5c}
        claims = {
            "iss": ISSUER, "sub": subject, "aud": SERVICE, "exp": now + self.lifetime, "nbf": now - 10,
            "iat": now, "jti": uuid.uuid4().hex, "access": access,
        }  # fmt: skip
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(signature)}"


class _TokenHandler(BaseHTTPRequestHandler):
    owner: TokenService
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _reply(self, status: int, payload: dict[str, object]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        scopes = query.get("scope", [])
        subject = ""
        header = self.headers.get("Authorization", "")
        if header.startswith("Basic "):
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            found = self.owner.authenticate(user, password)
            if found is None:
                self.owner.requests.append({"grant": "basic", "user": user, "scopes": scopes, "ok": False})
                self._reply(401, {"details": "invalid username or password"})
                return
            subject = found
        service = query.get("service", [""])[0]
        grant = "basic" if subject else "anonymous"
        self.owner.requests.append(
            {"grant": grant, "user": subject, "scopes": scopes, "service": service, "ok": True}
        )
        token = self.owner.sign(subject, self.owner.grant(subject, scopes))
        self._reply(200, {"token": token, "access_token": token, "expires_in": self.owner.lifetime})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(length).decode())
        scopes = " ".join(form.get("scope", [])).split()
        subject = self.owner.refresh_tokens.get(form.get("refresh_token", [""])[0])
        ok = form.get("grant_type") == ["refresh_token"] and subject is not None
        self.owner.requests.append({"grant": "refresh_token", "user": subject, "scopes": scopes, "ok": ok})
        if not ok or subject is None:
            self._reply(401, {"error": "invalid_grant"})
            return
        token = self.owner.sign(subject, self.owner.grant(subject, scopes))
        self._reply(200, {"access_token": token, "expires_in": self.owner.lifetime})


@dataclass
class GoogleTokenEndpointDoubleForTests:
    """Test double of Google's OAuth2 token endpoint for service-account JWT-bearer grants."""

    expires_in: int = 3600
    fail: bool = False
    issued: list[str] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    def __post_init__(self) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    @property
    def token_uri(self) -> str:
        assert self._server is not None
        return f"http://{loopback_host(self._server)}/token"

    def service_account_file(self, path: Path) -> Path:
        """A service-account key file (as GOOGLE_APPLICATION_CREDENTIALS) whose token_uri is this double."""
        pem = self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        info = {
            "type": "service_account", "project_id": "test-project", "private_key_id": "test-key-1",
            "private_key": pem, "client_email": "pusher@test-project.iam.gserviceaccount.com",
            "client_id": "1234567890", "token_uri": self.token_uri,
        }  # fmt: skip
        path.write_text(json.dumps(info))
        return path

    def valid(self, token: str) -> bool:
        return token in self.issued

    def __enter__(self) -> GoogleTokenEndpointDoubleForTests:
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                form = urllib.parse.parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
                status, payload = double._answer(form)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = start_loopback_server(Handler)
        return self

    def __exit__(self, *exc: object) -> None:
        stop_loopback_server(self._server)

    def _answer(self, form: dict[str, list[str]]) -> tuple[int, dict[str, object]]:
        if self.fail:
            return 400, {"error": "invalid_grant", "error_description": "account disabled"}
        if form.get("grant_type") != ["urn:ietf:params:oauth:grant-type:jwt-bearer"]:
            return 400, {"error": "unsupported_grant_type"}
        header_b64, claims_b64, signature = form["assertion"][0].split(".")
        self._key.public_key().verify(
            _b64url_decode(signature),
            f"{header_b64}.{claims_b64}".encode(),
            padding.PKCS1v15(),
            hashes.SHA256(),
        )
        claims = json.loads(_b64url_decode(claims_b64))
        if claims.get("aud") != GOOGLE_TOKEN_AUDIENCE or "cloud-platform" not in claims.get("scope", ""):
            return 400, {"error": "invalid_scope"}
        token = f"ya29.test-double-{uuid.uuid4().hex}"
        self.issued.append(token)
        return 200, {"access_token": token, "expires_in": self.expires_in, "token_type": "Bearer"}
