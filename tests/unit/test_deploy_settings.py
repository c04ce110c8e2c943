"""Every container of deploy/ (Compose and Kubernetes) resolves its settings exactly as it would
at start: the image's environment, then the deployment's, the mounted files that
`CONFIG_LOCATION` names, through `libs.infra.config` and the service's own `Settings`. Each must
start, listen where its Service or published port reaches it, and reach the other services by their
network names: inside a container, 127.0.0.1 is the container itself."""

from __future__ import annotations

import dataclasses
import importlib
import ipaddress
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import deploy_files
import pytest
from deploy_files import Container
from sqlalchemy.engine import make_url

from auth_service import api as auth_api
from libs.infra import config
from schedctl import platform

API_SERVICES = deploy_files.API_SERVICES
SERVICES = deploy_files.SERVICES


def _containers() -> list[Container]:
    containers = deploy_files.compose_containers() + deploy_files.kubernetes_containers()
    # `schedctl create-admin`, as deploy/README.md runs it: in a running user-service container
    # (`docker compose exec`, `kubectl exec`), with that container's environment and files.
    admins = [
        dataclasses.replace(c, name=f"{c.name}+create-admin", command=("schedctl", "create-admin"))
        for c in containers
        if c.package == "user_service"
    ]
    return containers + admins


CONTAINERS = _containers()
SERVICE_CONTAINERS = [c for c in CONTAINERS if c.package in SERVICES]


def is_loopback(host: str, *, listening: bool = False) -> bool:
    """Whether `host` is the machine itself: to connect to, 0.0.0.0 and :: are too (Linux
    takes them for the local host); to listen on, they are every interface."""
    host = host.strip("[]").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or (address.is_unspecified and not listening)


def outbound(settings: config.ServiceSettings) -> list[tuple[str, str, str]]:
    """(setting, value, host) of every address the process connects to."""
    found = []
    url = getattr(settings, "database_url", None)
    if url is not None:
        shown = make_url(url.get_secret_value())
        found.append(("database_url", shown.render_as_string(), shown.host or ""))
    servers = getattr(settings, "kafka_bootstrap_servers", None) or ""
    for server in filter(None, (part.strip() for part in servers.split(","))):
        host = server[1 : server.index("]")] if server.startswith("[") else server.rsplit(":", 1)[0]
        found.append(("kafka_bootstrap_servers", servers, host))
    if isinstance(settings, config.ApiSettings):
        jwks = settings.auth_jwks_url
        found.append(("auth_jwks_url", jwks, urlsplit(jwks).hostname or ""))
    for name in ("jobs_api_url", "users_api_url", "auth_api_url"):  # the console's
        url = getattr(settings, name, None)
        if url is not None:
            found.append((name, url, urlsplit(url).hostname or ""))
    return found


def named(container: Container) -> str:
    return str(container)


@pytest.mark.parametrize("container", CONTAINERS, ids=named)
def test_every_container_starts_with_its_settings(
    container: Container, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = deploy_files.resolve(container, tmp_path, monkeypatch)

    if container.package == "schedctl":  # migrate and create-admin need the database
        assert settings.database_url is not None, f"{container}: no database.url"
    else:  # what `python -m <service>` checks after loading, before it opens a port
        try:
            importlib.import_module(deploy_files.app_module(container.package)).create_app(settings)
        except config.ConfigError as exc:
            pytest.fail(f"{container} stops at start: {exc}")


@pytest.mark.parametrize("container", CONTAINERS, ids=named)
def test_no_container_looks_for_another_service_on_its_own_loopback(
    container: Container, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = deploy_files.resolve(container, tmp_path, monkeypatch)

    wrong = [(name, value) for name, value, host in outbound(settings) if is_loopback(host)]

    assert not wrong, f"{container} would connect to itself: {wrong}"


@pytest.mark.parametrize("container", SERVICE_CONTAINERS, ids=named)
def test_every_service_listens_where_its_deployment_sends_connections(
    container: Container, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = deploy_files.resolve(container, tmp_path, monkeypatch)

    listening = settings.http_host
    assert not is_loopback(listening, listening=True), f"{container} listens on {listening}"
    if container.deployment == "kubernetes":
        assert container.ports == {"http": settings.http_port}, container
    else:
        published = deploy_files.compose_published(container.name)
        assert all(port == settings.http_port for _, _, port in published), published


def _auth_reached(container: Container, url: str) -> list[tuple[Container, int]]:
    """The auth containers, and their ports, that `url` reaches from inside `container`."""
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}[parts.scheme]
    peers = [c for c in CONTAINERS if c.deployment == container.deployment]
    if container.deployment == "compose":
        return [(c, port) for c in peers if c.name == parts.hostname]
    service = deploy_files.kubernetes_service(parts.hostname or "")
    if service is None:
        return []
    backends = deploy_files.service_backends(service, port)
    return [(c, p) for workload, p in backends for c in peers if c.name == workload]


@pytest.mark.parametrize(
    "container", [c for c in SERVICE_CONTAINERS if c.package in API_SERVICES], ids=named
)
def test_api_services_fetch_public_keys_from_the_auth_service(
    container: Container, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = deploy_files.resolve(container, tmp_path, monkeypatch)
    assert isinstance(settings, config.ApiSettings)

    url = settings.auth_jwks_url
    reached = _auth_reached(container, url)

    assert urlsplit(url).path == auth_api.JWKS_PATH, url
    assert reached, f"{container}: {url} reaches no container of its deployment"
    for target, port in reached:
        assert target.package == "auth_service", f"{url} reaches {target}"
        target_settings = deploy_files.resolve(target, tmp_path / "target", monkeypatch)
        assert target_settings.http_port == port, f"{url}: the auth service listens elsewhere"


@pytest.mark.parametrize("deployment", ["compose", "kubernetes"])
def test_api_services_of_a_deployment_agree_on_tokens(
    deployment: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    agreed = set()
    for index, container in enumerate(SERVICE_CONTAINERS):
        if container.deployment != deployment:
            continue
        if container.package in API_SERVICES:
            settings = deploy_files.resolve(container, tmp_path / str(index), monkeypatch)
            assert isinstance(settings, config.ApiSettings)
            agreed.add((settings.auth_issuer, settings.auth_audience, settings.auth_algorithm))

    assert len(agreed) == 1, agreed


def test_compose_issuer_is_the_auth_service_as_published_on_the_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Not fetched by any service: the issuer names the auth service for clients, and its
    # metadata document builds the token and JWKS URLs from it. Under Compose, clients are on
    # the Docker host, where the auth service is a published port.
    (auth,) = [c for c in SERVICE_CONTAINERS if str(c) == "compose:auth-service"]
    settings = deploy_files.resolve(auth, tmp_path, monkeypatch)
    issuer = urlsplit(settings.auth_issuer)

    published = {
        (address, host_port)
        for address, host_port, port in deploy_files.compose_published(auth.name)
        if port == settings.http_port
    }

    assert issuer.scheme == "http" and issuer.path in ("", "/"), settings.auth_issuer
    assert (issuer.hostname, issuer.port) in published, (settings.auth_issuer, published)


def test_every_service_schedctl_up_runs_is_deployed_by_compose_and_kubernetes() -> None:
    packages = {service.package for service in platform.SERVICES}

    assert set(SERVICES) == packages
    for deployment in ("compose", "kubernetes"):
        deployed = {c.package for c in SERVICE_CONTAINERS if c.deployment == deployment}
        assert deployed == packages, deployment


def test_the_image_holds_every_package_of_the_distribution() -> None:
    project = tomllib.loads((deploy_files.REPO / "pyproject.toml").read_text())
    packages = [p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]]
    dockerfile = deploy_files.DOCKERFILE.read_text()
    context = (deploy_files.DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()

    for package in packages:
        assert f"COPY {package} ./{package}" in dockerfile, package
        assert f"!{package}" in context, package
