"""The Ingress of deploy/kubernetes routes every route of the public APIs, as the services
declare them, to the Service of the pods that serve it, and nothing else; it serves its host
over TLS, and that host is the tokens' issuer."""

from __future__ import annotations

import importlib
import re
import tempfile
from pathlib import Path
from typing import Any

import deploy_files
import pytest

from libs.infra import config

# Paths no client of the platform is meant to reach: probes, metrics, each service's own docs.
NOT_PUBLIC = ("/healthz", "/readyz", "/metrics", "/docs", "/redoc", "/openapi.json", "/")
PARAMETER = re.compile(r"\{[^}]+\}")


def ingresses() -> list[dict[str, Any]]:
    return [obj for obj in deploy_files.manifests() if obj["kind"] == "Ingress"]


def rules() -> list[tuple[str, dict[str, Any]]]:
    """(host, path rule) of every Ingress."""
    return [
        (rule.get("host", ""), path)
        for ingress in ingresses()
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    ]


def _matches(rule: dict[str, Any], path: str) -> bool:
    """Kubernetes' matching: Exact is the whole path; Prefix is whole `/`-separated elements."""
    if rule["pathType"] == "Exact":
        return path == rule["path"]
    if rule["pathType"] != "Prefix":
        raise deploy_files.Unsupported(f"pathType {rule['pathType']}")
    prefix = [part for part in rule["path"].split("/") if part]
    return [part for part in path.split("/") if part][: len(prefix)] == prefix


def route(host: str, path: str) -> dict[str, Any] | None:
    """The backend the Ingress sends `path` on `host` to: the longest matching path wins, and
    Exact wins over Prefix between paths of the same length."""
    candidates = [rule for rule_host, rule in rules() if rule_host == host and _matches(rule, path)]
    if not candidates:
        return None
    best = max(candidates, key=lambda rule: (len(rule["path"]), rule["pathType"] == "Exact"))
    return best["backend"]


def _service_port(backend: dict[str, Any]) -> int | str:
    port = backend["service"]["port"]
    return port["number"] if "number" in port else port["name"]


def _api_routes() -> list[tuple[str, str]]:
    """(package, path with sample parameters) of every path in the OpenAPI documents of the
    three APIs, each app built as its Kubernetes pod builds it."""
    found = []
    for container in deploy_files.kubernetes_containers():
        if container.package not in deploy_files.API_SERVICES:
            continue
        with pytest.MonkeyPatch.context() as monkeypatch, tempfile.TemporaryDirectory() as root:
            settings = deploy_files.resolve(container, Path(root), monkeypatch)
            app = importlib.import_module(f"{container.package}.api").create_app(settings)
        for path in app.openapi()["paths"]:
            found.append((container.package, PARAMETER.sub("a1b2", path)))
    return sorted(set(found))


def hosts() -> list[str]:
    return sorted({host for host, _ in rules()})


def test_one_ingress_for_the_platform_under_one_host() -> None:
    (ingress,) = ingresses()

    assert ingress["apiVersion"] == "networking.k8s.io/v1"
    assert ingress["metadata"]["namespace"] == deploy_files.NAMESPACE
    assert ingress["spec"].get("ingressClassName")
    assert len(hosts()) == 1 and hosts()[0], hosts()


def test_every_backend_is_a_service_port_with_pods_behind_it() -> None:
    for host, rule in rules():
        backend = rule["backend"]
        service = deploy_files.kubernetes_service(backend["service"]["name"])

        assert service is not None, f"{host}{rule['path']}: no Service {backend['service']}"
        assert deploy_files.service_backends(service, _service_port(backend)), (
            f"{host}{rule['path']}: {backend['service']} reaches no container port"
        )


@pytest.mark.parametrize(("package", "path"), _api_routes())
def test_every_api_route_reaches_its_service(package: str, path: str) -> None:
    (host,) = hosts()
    backend = route(host, path)

    assert backend is not None, f"{path} ({package}) is not routed by the Ingress"
    service = deploy_files.kubernetes_service(backend["service"]["name"])
    assert service is not None
    workloads = {name for name, _ in deploy_files.service_backends(service, _service_port(backend))}
    packages = {c.package for c in deploy_files.kubernetes_containers() if c.name in workloads}
    assert packages == {package}, f"{path} goes to {backend['service']['name']}, not {package}"


@pytest.mark.parametrize("path", NOT_PUBLIC)
def test_nothing_else_is_exposed(path: str) -> None:
    (host,) = hosts()

    assert route(host, path) is None, f"{path} is exposed: {route(host, path)}"


def test_the_host_is_served_over_tls_and_is_the_tokens_issuer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (ingress,) = ingresses()
    (host,) = hosts()
    tls_hosts = {name for entry in ingress["spec"].get("tls", []) for name in entry["hosts"]}
    (auth,) = [c for c in deploy_files.kubernetes_containers() if c.package == "auth_service"]

    settings = deploy_files.resolve(auth, tmp_path, monkeypatch)

    assert host in tls_hosts, tls_hosts
    assert isinstance(settings, config.ApiSettings)
    assert settings.auth_issuer.rstrip("/") == f"https://{host}", settings.auth_issuer
