"""Registry auth against real registries: htpasswd Basic, a token-auth distribution registry (Bearer
flow with JWTs we sign), docker config.json and credential helpers, and Google access tokens through
google-auth (with a test double of Google's token endpoint, the only part that cannot run here)."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import Registry, free_port, require_tool
from delivery.core.errors import ConfigError, RegistryError
from delivery.oci.auth import (
    Credentials,
    GoogleAccessTokenCredentials,
    is_google_registry,
    resolve_credentials,
)
from delivery.oci.blobs import BytesBlob
from delivery.oci.push import push_image
from delivery.oci.registry import RegistryClient
from delivery.oci.spec import OCI_CONFIG, OCI_LAYER_TAR, OCI_MANIFEST
from tokenauth import ISSUER, SERVICE, GoogleTokenEndpointDoubleForTests, TokenService, User

LAYER = OCI_LAYER_TAR
CONFIG = OCI_CONFIG


def small_image(seed: str, layers: int = 2) -> tuple[list[BytesBlob], BytesBlob, bytes]:
    blobs = [BytesBlob(f"{seed}-layer-{i}".encode() * 5000, LAYER) for i in range(layers)]
    config = BytesBlob(json.dumps({"os": "linux", "architecture": "amd64", "seed": seed}).encode(), CONFIG)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": CONFIG, "digest": config.digest, "size": config.size},
            "layers": [{"mediaType": LAYER, "digest": b.digest, "size": b.size} for b in blobs],
        }
    ).encode()
    return blobs, config, manifest


def push(client: RegistryClient, repo: str, seed: str, **kw: object) -> str:
    layers, config, manifest = small_image(seed)
    report = push_image(
        client, repo, layers=layers, config=config, manifest=manifest, manifest_media_type=OCI_MANIFEST,
        **kw,  # type: ignore[arg-type]
    )  # fmt: skip
    return report.digest


# --------------------------------------------------------------------------- a token-auth registry


@dataclass
class TokenRegistry:
    registry: Registry
    tokens: TokenService


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenRegistry]:
    """A real distribution registry with ``auth: token`` whose realm is our TokenService."""
    binary = require_tool("docker-registry")
    base = tmp_path_factory.mktemp("token-registry")
    service = TokenService(
        base,
        users={"pusher": User("pusher-secret-pw"), "reader": User("reader-secret-pw", ("pull",))},
        refresh_tokens={"refresh-token-for-pusher-xyz": "pusher"},
    )
    with service:
        port = free_port()
        (base / "data").mkdir()
        (base / "config.yml").write_text(
            "\n".join(
                [
                    "version: 0.1",
                    "log: {level: warn, accesslog: {disabled: true}}",
                    f"storage: {{filesystem: {{rootdirectory: {base / 'data'}}}, delete: {{enabled: true}}}}",
                    f"http: {{addr: 127.0.0.1:{port}, secret: test-only-secret}}",
                    f"auth: {{token: {{realm: '{service.realm}', service: {SERVICE}, issuer: {ISSUER}, "
                    f"rootcertbundle: {service.ca_bundle}}}}}",
                ]
            )
            + "\n"
        )
        reg = Registry(host=f"127.0.0.1:{port}", root=base / "data", log=base / "registry.log")
        with reg.log.open("wb") as log:
            proc = subprocess.Popen([binary, "serve", str(base / "config.yml")], stdout=log, stderr=log)
        try:
            _wait_for(reg, proc)
            yield TokenRegistry(reg, service)
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def _wait_for(reg: Registry, proc: subprocess.Popen[bytes]) -> None:
    import httpx

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"docker-registry exited: {reg.log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{reg.url}/v2/", timeout=1).status_code == 401:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError("token registry did not start")


def test_bearer_token_flow_push_and_pull_with_cached_scoped_tokens(token_registry: TokenRegistry) -> None:
    reg, tokens = token_registry.registry, token_registry.tokens
    tokens.requests.clear()
    repo = reg.unique_repo("bearer")
    creds = resolve_credentials(reg.host, username="pusher", password="pusher-secret-pw")
    with RegistryClient(reg.host, creds, backoff=0.01) as client:
        digest = push(client, repo, "bearer", tags=["v1"])
        assert client.get_manifest(repo, "v1").digest == digest
    asked = [r["scopes"] for r in tokens.requests]
    assert all(r["user"] == "pusher" and r["service"] == SERVICE for r in tokens.requests)
    assert [f"repository:{repo}:pull,push"] in asked and [f"repository:{repo}:pull"] in asked
    assert len(asked) == 2  # one token per scope set, reused by every blob and the manifest


def test_bearer_mount_asks_for_pull_on_the_source_repository(token_registry: TokenRegistry) -> None:
    reg, tokens = token_registry.registry, token_registry.tokens
    source, target = reg.unique_repo("src"), reg.unique_repo("dst")
    creds = resolve_credentials(reg.host, username="pusher", password="pusher-secret-pw")
    with RegistryClient(reg.host, creds, backoff=0.01) as client:
        push(client, source, "mount")
        tokens.requests.clear()
        layers, config, manifest = small_image("mount")
        report = push_image(
            client, target, layers=layers, config=config, manifest=manifest,
            manifest_media_type=OCI_MANIFEST, mount_from=[source],
        )  # fmt: skip
    assert [b.outcome for b in report.blobs] == ["mounted"] * 3
    assert sorted([f"repository:{source}:pull", f"repository:{target}:pull,push"]) in [
        sorted(r["scopes"]) for r in tokens.requests
    ]


def test_bearer_wrong_password_is_a_clear_authentication_error(token_registry: TokenRegistry) -> None:
    reg = token_registry.registry
    creds = resolve_credentials(reg.host, username="pusher", password="wrong-password-123")
    with RegistryClient(reg.host, creds, backoff=0.01) as client, pytest.raises(RegistryError) as err:
        push(client, reg.unique_repo("bad"), "bad")
    text = str(err.value)
    assert "authentication failed" in text and "user 'pusher'" in text and "fix:" in text
    assert "wrong-password-123" not in text and "wrong-password-123" not in repr(client)


def test_bearer_read_only_user_can_pull_but_not_push(token_registry: TokenRegistry) -> None:
    reg = token_registry.registry
    repo = reg.unique_repo("ro")
    with RegistryClient(
        reg.host, resolve_credentials(reg.host, username="pusher", password="pusher-secret-pw")
    ) as c:
        digest = push(c, repo, "ro")
    reader = resolve_credentials(reg.host, username="reader", password="reader-secret-pw")
    with RegistryClient(reg.host, reader, backoff=0.01) as client:
        assert client.get_manifest(repo, digest).digest == digest
        with pytest.raises(RegistryError, match=r"authentication failed.*HTTP 401.*UNAUTHORIZED") as err:
            push(client, reg.unique_repo("ro-push"), "ro-push")
        assert "reader-secret-pw" not in str(err.value)


def test_anonymous_client_on_a_token_registry_is_refused(token_registry: TokenRegistry) -> None:
    reg = token_registry.registry
    with RegistryClient(reg.host, backoff=0.01) as client, pytest.raises(RegistryError) as err:
        client.get_manifest(reg.unique_repo("anon"), "v1")
    assert "authentication failed" in str(err.value) and "anonymous" in str(err.value)
    assert "docker login" in str(err.value)


def test_identity_token_from_docker_config_uses_the_oauth2_refresh_grant(
    token_registry: TokenRegistry, tmp_path: Path
) -> None:
    reg, tokens = token_registry.registry, token_registry.tokens
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps({"auths": {reg.host: {"auth": "", "identitytoken": "refresh-token-for-pusher-xyz"}}})
    )
    creds = resolve_credentials(reg.host, docker_config=config)
    assert "refresh-token-for-pusher-xyz" not in repr(creds)
    tokens.requests.clear()
    with RegistryClient(reg.host, creds, backoff=0.01) as client:
        push(client, reg.unique_repo("idtoken"), "idtoken")
    assert tokens.requests and all(r["grant"] == "refresh_token" and r["ok"] for r in tokens.requests)


# --------------------------------------------------------------------------- basic auth (htpasswd)


def test_basic_auth_push_and_pull(auth_registry: Registry) -> None:
    repo = auth_registry.unique_repo("basic")
    creds = resolve_credentials(
        auth_registry.host, username=auth_registry.username, password=auth_registry.password
    )
    with RegistryClient(auth_registry.host, creds) as client:
        digest = push(client, repo, "basic", tags=["v1"])
        assert client.get_manifest(repo, "v1").digest == digest


@pytest.mark.parametrize("password", [None, "not-the-password"])
def test_basic_auth_failure_is_clear_and_leaks_nothing(auth_registry: Registry, password: str | None) -> None:
    creds = (
        resolve_credentials(auth_registry.host, username="tester", password=password) if password else None
    )
    with (
        RegistryClient(auth_registry.host, creds, backoff=0.01) as client,
        pytest.raises(RegistryError) as err,
    ):
        push(client, auth_registry.unique_repo("denied"), "denied")
    text = err.value.render()
    assert "authentication failed" in text and "HTTP 401" in text
    assert ("user 'tester'" if password else "anonymous") in text
    assert "fix:" in text and ("docker login" in text or "--username" in text)
    if password:
        assert password not in text and password not in repr(creds) and password not in str(client)


# --------------------------------------------------------------------------- docker config.json


def write_config(path: Path, data: dict[str, object]) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_docker_config_auth_and_username_password_entries(auth_registry: Registry, tmp_path: Path) -> None:
    user, pw = auth_registry.username or "", auth_registry.password or ""
    encoded = base64.b64encode(f"{user}:{pw}".encode()).decode()
    for entry_key, entry in [
        (auth_registry.host, {"auth": encoded}),
        (f"http://{auth_registry.host}/v2/", {"username": user, "password": pw}),
    ]:
        config = write_config(tmp_path / "config.json", {"auths": {entry_key: entry}})
        creds = resolve_credentials(auth_registry.host, docker_config=config)
        assert creds.username == user and pw not in repr(creds) and "docker config" in creds.source
        with RegistryClient(auth_registry.host, creds) as client:
            push(client, auth_registry.unique_repo("cfg"), "cfg")


def test_docker_config_from_the_environment_and_hub_aliases(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoded = base64.b64encode(b"hubuser:hubpass").decode()
    write_config(tmp_path / "config.json", {"auths": {"https://index.docker.io/v1/": {"auth": encoded}}})
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    assert resolve_credentials("registry-1.docker.io").username == "hubuser"
    assert resolve_credentials("ghcr.io").anonymous
    explicit = resolve_credentials("ghcr.io", username="me", password="pw-explicit")
    assert explicit.username == "me" and explicit.source == "--username and the password from --password"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "cannot read docker config"),
        ('{"auths": {"r.example": {"auth": "***"}}}', "not base64"),
        ('{"auths": {"r.example": {"auth": "' + base64.b64encode(b"nocolon").decode() + '"}}}', "no ':'"),
        ('{"credHelpers": {"r.example": "absent-helper-xyz"}}', "docker-credential-absent-helper-xyz is not"),
        ("[]", "not a JSON object"),
    ],
)
def test_bad_docker_config_is_a_config_error(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "config.json").write_text(content)
    with pytest.raises(ConfigError, match=message) as err:
        resolve_credentials("r.example", docker_config=tmp_path / "config.json")
    assert "config.json" in str(err.value)


def test_missing_explicit_docker_config_and_half_credentials(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_credentials("r.example", docker_config=tmp_path / "nope.json")
    with pytest.raises(ConfigError, match="needs a password"):
        resolve_credentials("r.example", username="only-user")


HELPER = """#!/bin/sh
read server
echo "$server" >> "{log}"
case "$server" in
  {host}) printf '{{"ServerURL":"%s","Username":"{user}","Secret":"{password}"}}' "$server" ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac
"""


@pytest.fixture
def credential_helper(auth_registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A real ``docker-credential-fortests`` executable on PATH that knows the auth registry."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    helper = bindir / "docker-credential-fortests"
    log = tmp_path / "helper.log"
    helper.write_text(
        HELPER.format(
            log=log, host=auth_registry.host, user=auth_registry.username, password=auth_registry.password
        )
    )
    helper.chmod(helper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return log


def test_cred_helpers_and_creds_store_run_the_helper(
    auth_registry: Registry, tmp_path: Path, credential_helper: Path
) -> None:
    for key in ("credHelpers", "credsStore"):
        value: object = {auth_registry.host: "fortests"} if key == "credHelpers" else "fortests"
        config = write_config(tmp_path / "config.json", {key: value})
        creds = resolve_credentials(auth_registry.host, docker_config=config)
        assert creds.username == auth_registry.username and "docker-credential-fortests" in creds.source
        assert auth_registry.password not in repr(creds)  # type: ignore[operator]
        with RegistryClient(auth_registry.host, creds) as client:
            push(client, auth_registry.unique_repo(key.lower()), key)
    assert credential_helper.read_text().split() == [auth_registry.host, auth_registry.host]


def test_creds_store_without_an_entry_falls_back_to_auths(tmp_path: Path, credential_helper: Path) -> None:
    encoded = base64.b64encode(b"u:p-from-auths").decode()
    config = write_config(
        tmp_path / "config.json", {"credsStore": "fortests", "auths": {"other.example": {"auth": encoded}}}
    )
    creds = resolve_credentials("other.example", docker_config=config)
    assert creds.username == "u" and "auths" in creds.source
    assert resolve_credentials("third.example", docker_config=config).anonymous


# --------------------------------------------------------------------------- Google Artifact Registry


def test_google_registries_are_recognised() -> None:
    assert all(
        is_google_registry(h)
        for h in ("europe-west4-docker.pkg.dev", "us-docker.pkg.dev", "gcr.io", "eu.gcr.io")
    )
    assert not any(
        is_google_registry(h) for h in ("ghcr.io", "docker.pkg.dev.evil.example", "127.0.0.1:5000")
    )


def test_google_access_token_via_google_auth_pushes_and_refreshes_per_blob(
    token_registry: TokenRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg, tokens = token_registry.registry, token_registry.tokens
    with GoogleTokenEndpointDoubleForTests(expires_in=300) as google:  # < 10 min: renewed before each blob
        monkeypatch.setenv(
            "GOOGLE_APPLICATION_CREDENTIALS", str(google.service_account_file(tmp_path / "sa.json"))
        )
        creds = resolve_credentials("europe-west4-docker.pkg.dev")
        assert isinstance(creds, GoogleAccessTokenCredentials)
        assert creds.username == "oauth2accesstoken" and "google-auth" in creds.source
        tokens.password_check = lambda user, pw: user == "oauth2accesstoken" and google.valid(pw)
        tokens.requests.clear()
        try:
            with RegistryClient(reg.host, creds, backoff=0.01) as client:
                digest = push(client, reg.unique_repo("gar"), "gar", parallel=1)
        finally:
            tokens.password_check = None
        assert digest.startswith("sha256:")
        assert len(google.issued) >= 3  # a fresh access token for each of the 3 blobs
        assert all(r["user"] == "oauth2accesstoken" and r["ok"] for r in tokens.requests)
        for token in google.issued:
            assert token not in repr(creds) and token not in str(client)


def test_long_lived_google_token_is_not_refreshed_per_blob(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with GoogleTokenEndpointDoubleForTests(expires_in=3600) as google:
        monkeypatch.setenv(
            "GOOGLE_APPLICATION_CREDENTIALS", str(google.service_account_file(tmp_path / "sa.json"))
        )
        creds = resolve_credentials("us-docker.pkg.dev")
        first = creds.secret().password
        assert first in google.issued and not creds.refresh_if_needed() and creds.secret().password == first


def test_google_token_endpoint_failure_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with GoogleTokenEndpointDoubleForTests(fail=True) as google:
        monkeypatch.setenv(
            "GOOGLE_APPLICATION_CREDENTIALS", str(google.service_account_file(tmp_path / "sa.json"))
        )
        creds = resolve_credentials("europe-docker.pkg.dev")
        with pytest.raises(RegistryError, match="could not get a Google access token") as err:
            creds.secret()
        assert "gcloud auth application-default login" in str(err.value)


def test_no_google_credentials_means_anonymous_with_a_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    creds = resolve_credentials("europe-docker.pkg.dev")
    assert creds.anonymous and "GOOGLE_APPLICATION_CREDENTIALS" in creds.hint


def test_credentials_repr_never_shows_secrets() -> None:
    creds = Credentials(source="test", username="u", password="s3cret-value", identity_token="t0ken-value")
    for text in (repr(creds), str(creds), repr(creds.secret())):
        assert "s3cret-value" not in text and "t0ken-value" not in text
    assert set(creds.secret_values()) == {"s3cret-value", "t0ken-value"}
