"""Registry auth: credentials (explicit, docker config.json, credential helpers, Google tokens), and
the ``WWW-Authenticate`` challenge answered with them (Basic, or the Bearer token handshake).

``resolve_credentials(registry)`` picks, in order: an explicit username/password; the docker
config (``credHelpers`` > ``credsStore`` > ``auths`` with ``auth``/``username``+``password``/
``identitytoken``); for Google Artifact Registry and gcr.io, an OAuth2 access token from
google-auth's Application Default Credentials (username ``oauth2accesstoken``, refreshed before it
runs out: tokens live 60 minutes); else anonymous. Secret values never appear in ``repr``/``str``.

``RegistryAuth`` answers whatever the registry asks for in ``WWW-Authenticate``: Basic, or the
Bearer token flow (realm/service/scope; one token per scope set, cached until it expires;
``pull`` scope on mount sources). Secrets never reach messages, logs or ``repr``.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from delivery.core.console import redact
from delivery.core.errors import ConfigError, RegistryError
from delivery.oci.transport import Transient, is_loopback_host, retry_after

GOOGLE_SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
GOOGLE_USERNAME = "oauth2accesstoken"
DOCKER_HUB_SERVER = "https://index.docker.io/v1/"
_DOCKER_HUB_HOSTS = {"registry-1.docker.io", "docker.io", "index.docker.io"}
_GOOGLE_HOST_RE = re.compile(r"^(?:[a-z0-9-]+-docker\.pkg\.dev|docker\.pkg\.dev|(?:[a-z]+\.)?gcr\.io)$")
_IDENTITY_TOKEN_USERNAME = "<token>"
_TOKEN_MARGIN = 30.0  # seconds: renew a bearer token this long before it expires
_DEFAULT_TOKEN_LIFETIME = 60.0  # seconds, per the docker token spec when expires_in is absent
_AUTH_PARAM_RE = re.compile(r'([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)')
_LOGIN_FIX = "check the credentials: run `docker login {registry}` or pass --username/--password"


@dataclass(frozen=True)
class Secret:
    """What a request needs: Basic user/password, or an identity (OAuth2 refresh) token."""

    username: str | None
    password: str | None
    identity_token: str | None = None

    def __repr__(self) -> str:
        return f"Secret(username={self.username!r}, password=***, identity_token=***)"


class Credentials:
    """Credentials for one registry; ``source`` says where they came from (never the secret)."""

    def __init__(
        self,
        *,
        source: str = "anonymous",
        username: str | None = None,
        password: str | None = None,
        identity_token: str | None = None,
        hint: str = "",
    ) -> None:
        self.source = source
        self.username = username
        self._password = password
        self._identity_token = identity_token
        self.hint = hint

    @property
    def anonymous(self) -> bool:
        return self.username is None and self._identity_token is None

    def secret(self) -> Secret:
        """The current secret values (refreshed first when they can run out)."""
        return Secret(self.username, self._password, self._identity_token)

    def refresh_if_needed(self) -> bool:
        """Renew a short-lived secret that is about to expire; True when the secret changed."""
        return False

    def secret_values(self) -> tuple[str, ...]:
        """Every secret string, for redaction of messages that might echo one."""
        return tuple(v for v in (self._password, self._identity_token) if v)

    def describe(self) -> str:
        """A human description, safe to print: ``user 'x' from docker config`` or ``anonymous``."""
        if self.anonymous:
            return "anonymous"
        who = "an identity token" if self._identity_token else f"user {self.username!r}"
        return f"{who} from {self.source}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.describe()})"

    __str__ = __repr__


ANONYMOUS = Credentials(hint="pass --username/--password or run `docker login <registry>`")


class GoogleAccessTokenCredentials(Credentials):
    """A Google OAuth2 access token as the password of ``oauth2accesstoken`` (Artifact Registry)."""

    def __init__(self, google_credentials: Any, *, source: str, min_lifetime: timedelta) -> None:
        super().__init__(
            source=source,
            username=GOOGLE_USERNAME,
            hint="run `gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS "
            "to a service account key with roles/artifactregistry.writer",
        )
        self._google = google_credentials
        self._min_lifetime = min_lifetime
        self._lock = threading.Lock()

    def secret(self) -> Secret:
        self.refresh_if_needed()
        return Secret(self.username, self._password)

    def refresh_if_needed(self) -> bool:
        with self._lock:
            expiry: datetime | None = getattr(self._google, "expiry", None)
            now = datetime.now(UTC).replace(tzinfo=None)
            if self._password and expiry is not None and expiry - now > self._min_lifetime:
                return False
            import google.auth.exceptions
            import google.auth.transport.requests

            try:
                self._google.refresh(google.auth.transport.requests.Request())
            except google.auth.exceptions.GoogleAuthError as exc:
                raise RegistryError(
                    f"could not get a Google access token ({type(exc).__name__}: {_first_line(str(exc))})",
                    where=self.source,
                    fix=self.hint,
                ) from None
            token = self._google.token
            if not isinstance(token, str) or not token:
                raise RegistryError("google-auth returned no access token", where=self.source, fix=self.hint)
            changed = token != self._password
            self._password = token
            return changed


def resolve_credentials(
    registry: str,
    *,
    username: str | None = None,
    password: str | None = None,
    password_origin: str = "",
    docker_config: Path | None = None,
) -> Credentials:
    """Credentials for ``registry``: explicit > docker config > Google ADC (GAR/gcr.io) > anonymous.

    ``password_origin`` names where an explicit password came from (``--password-file F``,
    ``$DELIVER_REGISTRY_PASSWORD``) so an auth error points at the right place.
    """
    if username or password:
        if not (username and password):
            raise ConfigError(
                "a registry username needs a password and vice versa",
                where=f"credentials for {registry}",
                fix="give both a username and a password (or neither, to use docker config)",
            )
        origin = password_origin or "--password"
        return Credentials(
            source=f"--username and the password from {origin}",
            username=username,
            password=password,
            hint=f"check --username and the password in {origin}",
        )
    found = from_docker_config(registry, docker_config)
    if found is not None:
        return found
    if is_google_registry(registry):
        google = google_credentials()
        if google is not None:
            return google
        return Credentials(
            hint="no Google credentials found: run `gcloud auth application-default login` or set "
            "GOOGLE_APPLICATION_CREDENTIALS"
        )
    return ANONYMOUS


def is_google_registry(registry: str) -> bool:
    """True for Artifact Registry (``*-docker.pkg.dev``) and Container Registry (``*gcr.io``) hosts."""
    return bool(_GOOGLE_HOST_RE.match(registry.lower()))


def google_credentials(min_lifetime: timedelta = timedelta(minutes=10)) -> Credentials | None:
    """Application Default Credentials as a GAR login, or None when the environment has none."""
    import google.auth
    import google.auth.exceptions

    try:
        creds, _project = google.auth.default(scopes=list(GOOGLE_SCOPES))
    except google.auth.exceptions.DefaultCredentialsError:
        return None
    kind = type(creds).__module__.rsplit(".", 1)[-1]
    return GoogleAccessTokenCredentials(creds, source=f"google-auth ({kind})", min_lifetime=min_lifetime)


# --------------------------------------------------------------------------- docker config.json


def docker_config_path(explicit: Path | None = None) -> Path:
    """The docker config file: explicit path (file or dir), ``$DOCKER_CONFIG``, or ``~/.docker``."""
    if explicit is not None:
        return explicit / "config.json" if explicit.is_dir() else explicit
    base = os.environ.get("DOCKER_CONFIG")
    return (Path(base) if base else Path.home() / ".docker") / "config.json"


def from_docker_config(registry: str, docker_config: Path | None = None) -> Credentials | None:
    """Credentials for ``registry`` from docker's config.json (helpers, store, auths), or None."""
    path = docker_config_path(docker_config)
    if not path.is_file():
        if docker_config is not None:
            raise ConfigError(
                f"docker config {path} does not exist",
                where=str(path),
                fix="pass the path of a docker config.json (or its directory)",
            )
        return None
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(
            f"cannot read docker config: {exc}", where=str(path), fix="fix or remove the file"
        ) from None
    if not isinstance(config, dict):
        raise ConfigError("docker config is not a JSON object", where=str(path), fix="fix or remove the file")
    where = f"docker config {path}"
    helpers = config.get("credHelpers") or {}
    if isinstance(helpers, dict):
        for key, helper in helpers.items():
            if _host_of(key) in _aliases(registry) and isinstance(helper, str):
                return credential_helper(helper, _server_url(registry), source=f"{where} (credHelpers)")
    store = config.get("credsStore")
    if isinstance(store, str) and store:
        found = credential_helper(
            store, _server_url(registry), source=f"{where} (credsStore)", required=False
        )
        if found is not None:
            return found
    auths = config.get("auths") or {}
    if isinstance(auths, dict):
        for key, entry in auths.items():
            if _host_of(key) in _aliases(registry) and isinstance(entry, dict):
                found = _from_auth_entry(entry, where=f"{where} (auths.{key})")
                if found is not None:
                    return found
    return None


def _from_auth_entry(entry: dict[str, Any], *, where: str) -> Credentials | None:
    hint = "run `docker login` again or fix the entry"
    token = entry.get("identitytoken")
    username, password = entry.get("username"), entry.get("password")
    encoded = entry.get("auth")
    if isinstance(encoded, str) and encoded:
        try:
            decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise ConfigError(
                "the 'auth' field is not base64 of user:password", where=where, fix=hint
            ) from None
        username, sep, password = decoded.partition(":")
        if not sep:
            raise ConfigError("the 'auth' field has no ':' between user and password", where=where, fix=hint)
    if isinstance(token, str) and token:
        return Credentials(source=where, username=_str_or_none(username), identity_token=token, hint=hint)
    if isinstance(username, str) and username and isinstance(password, str) and password:
        return Credentials(source=where, username=username, password=password, hint=hint)
    return None


def credential_helper(
    name: str, server_url: str, *, source: str, required: bool = True
) -> Credentials | None:
    """Ask ``docker-credential-<name> get`` for ``server_url``; None when it has nothing stored."""
    program = f"docker-credential-{name}"
    exe = shutil.which(program)
    if exe is None:
        if not required:
            return None
        raise ConfigError(
            f"credential helper {program} is not installed (named by {source})",
            where=source,
            fix=f"install {program} on PATH, or remove the entry from the docker config",
        )
    try:
        done = subprocess.run(
            [exe, "get"], input=server_url, capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"credential helper {program} failed: {exc}", where=source) from None
    if done.returncode != 0:
        message = (done.stdout + done.stderr).strip()
        if "credentials not found" in message.lower():
            return None
        raise ConfigError(
            f"credential helper {program} failed with exit code {done.returncode}: {_first_line(message)}",
            where=source,
            fix=f"run `{program} get` by hand to see why, or log in again",
        )
    try:
        reply = json.loads(done.stdout)
        username, secret = reply["Username"], reply["Secret"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise ConfigError(
            f"credential helper {program} did not answer with JSON {{Username, Secret}}", where=source
        ) from None
    if not isinstance(secret, str) or not secret:
        return None
    hint = f"log in again so that {program} stores fresh credentials"
    if username == _IDENTITY_TOKEN_USERNAME:
        return Credentials(source=f"{source} via {program}", identity_token=secret, hint=hint)
    return Credentials(source=f"{source} via {program}", username=str(username), password=secret, hint=hint)


def _aliases(registry: str) -> set[str]:
    host = _host_of(registry)
    return set(_DOCKER_HUB_HOSTS) if host in _DOCKER_HUB_HOSTS else {host}


def _host_of(key: str) -> str:
    text = key.strip().lower()
    for scheme in ("https://", "http://"):
        if text.startswith(scheme):
            text = text[len(scheme) :]
    return text.split("/", 1)[0]


def _server_url(registry: str) -> str:
    return DOCKER_HUB_SERVER if _host_of(registry) in _DOCKER_HUB_HOSTS else registry


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _first_line(text: str, limit: int = 200) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:limit]


# --------------------------------------------------------------------------- the auth handshake


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="..",service="..",scope=".."`` -> ("bearer", {realm, service, scope})."""
    scheme, _, rest = header.strip().partition(" ")
    params: dict[str, str] = {}
    for key, raw in _AUTH_PARAM_RE.findall(rest):
        value = raw[1:-1].replace('\\"', '"') if raw.startswith('"') else raw
        params[key.lower()] = value
    return scheme.lower(), params


def pull_scope(repository: str) -> str:
    return f"repository:{repository}:pull"


def push_scope(repository: str) -> str:
    return f"repository:{repository}:pull,push"


@dataclass
class _Token:
    value: str = field(repr=False)
    expires_at: float


class RegistryAuth:
    """The ``Authorization`` of one registry host's requests: Basic, or cached Bearer tokens. Thread-safe.

    Nothing is sent until a 401 says which scheme the registry wants (``learn_challenge``).
    """

    def __init__(
        self, registry: str, credentials: Credentials, http: httpx.Client, *, plain_http: bool
    ) -> None:
        self.registry = registry
        self.credentials = credentials
        self.plain_http = plain_http
        self._http = http
        self._lock = threading.Lock()
        self._scheme: str | None = None  # "basic" / "bearer" once the registry asked for it
        self._bearer: dict[str, str] = {}
        self._tokens: dict[tuple[str, ...], _Token] = {}
        self._token_locks: dict[tuple[str, ...], threading.Lock] = {}

    def describe(self) -> str:
        return self.credentials.describe()

    def login_fix(self) -> str:
        return self.credentials.hint or _LOGIN_FIX.format(registry=self.registry)

    def redact(self, text: str) -> str:
        with self._lock:
            tokens = [t.value for t in self._tokens.values()]
        return redact(text, *self.credentials.secret_values(), *tokens)

    def renew_if_needed(self) -> None:
        """Renew short-lived credentials (GAR: 60 min); tokens got with the old ones are dropped."""
        if self.credentials.refresh_if_needed():
            with self._lock:
                self._tokens.clear()

    def learn_challenge(self, response: httpx.Response) -> bool:
        """Remember what a 401 asked for; True when a retry with (new) credentials can help."""
        challenges = [parse_challenge(h) for h in response.headers.get_list("WWW-Authenticate")]
        bearer = next((p for s, p in challenges if s == "bearer"), None)
        basic = any(s == "basic" for s, _ in challenges)
        request_auth = response.request.headers.get("Authorization", "")
        with self._lock:
            if bearer is not None and "realm" in bearer:
                previous_scheme = self._scheme
                self._scheme = "bearer"
                self._bearer = {"realm": bearer["realm"], "service": bearer.get("service", "")}
                if previous_scheme == "bearer" and request_auth.startswith("Bearer "):
                    # the token did not do: drop it (expired, or too narrow a scope)
                    self._tokens = {
                        k: t for k, t in self._tokens.items() if f"Bearer {t.value}" != request_auth
                    }
                return True
            if basic:
                if request_auth.startswith("Basic ") or self.credentials.anonymous:
                    self._scheme = "basic"
                    return False
                self._scheme = "basic"
                return True
        return False

    def authorization(self, scopes: tuple[str, ...]) -> str | None:
        scheme = self._scheme
        if scheme == "basic":
            secret = self.credentials.secret()
            if secret.username and secret.password:
                raw = f"{secret.username}:{secret.password}".encode()
                return "Basic " + base64.b64encode(raw).decode("ascii")
            return None
        if scheme == "bearer":
            return "Bearer " + self._token(tuple(sorted(scopes)))
        return None

    def _token(self, scopes: tuple[str, ...]) -> str:
        with self._lock:
            lock = self._token_locks.setdefault(scopes, threading.Lock())
        with lock:
            cached = self._tokens.get(scopes)
            if cached is not None and cached.expires_at - _TOKEN_MARGIN > time.monotonic():
                return cached.value
            token = self._fetch_token(scopes)
            with self._lock:
                self._tokens[scopes] = token
            return token.value

    def _fetch_token(self, scopes: tuple[str, ...]) -> _Token:
        realm = httpx.URL(self._bearer["realm"])
        service = self._bearer.get("service", "")
        secret = self.credentials.secret()
        if realm.scheme not in ("http", "https"):
            raise RegistryError(f"token realm {realm} is not an http(s) URL", where=self.registry)
        if (
            realm.scheme == "http"
            and not self.credentials.anonymous
            and not (self.plain_http or is_loopback_host(realm.netloc.decode()))
        ):
            raise RegistryError(
                f"the registry asks for credentials to be sent to {realm} over plain http",
                where=self.registry,
                fix="use an https token realm (credentials are never sent in clear text to remote hosts)",
            )
        started = time.monotonic()
        try:
            if secret.identity_token:
                form = {
                    "grant_type": "refresh_token",
                    "refresh_token": secret.identity_token,
                    "service": service,
                    "scope": " ".join(scopes),
                    "client_id": "llm-platform-delivery",
                }
                response = self._http.post(realm, data=form)
            else:
                params: list[tuple[str, str | int | float | bool | None]] = []
                if service:
                    params.append(("service", service))
                params += [("scope", s) for s in scopes]
                auth = (secret.username, secret.password) if secret.username and secret.password else None
                response = self._http.get(realm.copy_merge_params(params), auth=auth)
        except httpx.TransportError as exc:
            raise Transient(f"token request to {realm.host}: {type(exc).__name__}") from None
        if response.status_code == 429 or response.status_code >= 500:
            raise Transient(
                f"token request to {realm.host}: HTTP {response.status_code}", retry_after(response)
            )
        if response.status_code in (401, 403):
            raise RegistryError(
                f"authentication failed: the token service {realm.host} refused "
                f"{self.credentials.describe()} (HTTP {response.status_code}) "
                f"for {' '.join(scopes) or 'registry access'}",
                where=self.registry,
                fix=self.login_fix(),
            )
        try:
            body = response.json()
            value = body.get("token") or body.get("access_token")
            lifetime = float(body.get("expires_in") or _DEFAULT_TOKEN_LIFETIME)
        except (ValueError, AttributeError, TypeError):
            value, lifetime = None, 0.0
        if response.status_code != 200 or not isinstance(value, str) or not value:
            raise RegistryError(
                f"the token service {realm.host} answered HTTP {response.status_code} without a token",
                where=self.registry,
                fix="check the registry's token service",
            )
        return _Token(value, started + lifetime)
