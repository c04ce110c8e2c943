"""The deployment files of `deploy/` read the way Docker Compose and Kubernetes read them: what
each container of the platform gets as its environment and its mounted files, and which
container a network address inside the deployment reaches. Not a test module.

Parsed once per test session: callers must not change what they get.

Only what these files use is modelled; anything else they might use (a Compose `env_file`, a
Kubernetes `command` or `subPath`) raises `Unsupported`, so a test fails rather than resolving
a container differently from how it would run.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from libs.infra import config
from schedctl import platform

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
CONFIG = REPO / "config"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE_FILE = DEPLOY / "compose.yaml"
KUBERNETES = DEPLOY / "kubernetes"
NAMESPACE = "scheduler"
# The ConfigMap that deploy/README.md has the operator create from a folder of .properties
# files (`kubectl create configmap scheduler-config --from-file=...`), here from config/.
CONFIG_MAP = "scheduler-config"
# What an operator writes in place of a REPLACE_ME of the Secret templates, by key. A key not
# listed gets PLACEHOLDER_VALUE; the encryption key must be base64 of 32 bytes to be accepted.
PLACEHOLDER = "REPLACE_ME"
PLACEHOLDER_VALUE = "replaced"
PLACEHOLDER_LINES = {
    "signing.key.encryption.key": "c3RhbmQtaW4tZm9yLWEtMzItYnl0ZS1rZXktISEhISE=",
}
LOCATION_VARIABLES = ("CONFIG_LOCATION", "SPRING_CONFIG_LOCATION")
API_SERVICES = ("user_service", "auth_service", "job_service")
SERVICES = (*API_SERVICES, "scheduler_service", "executor_service", "console_service")


# The module whose `create_app(settings)` a service's process builds its app with.
def app_module(package: str) -> str:
    """The module whose `create_app` builds the package's service: its composition root,
    `app.py`, where it has one, else `api.py` (a service whose routes and wiring are one)."""
    return f"{package}.app" if importlib.util.find_spec(f"{package}.app") else f"{package}.api"


class Unsupported(Exception):
    """The deployment files use something this model does not read."""


@dataclass(frozen=True)
class Container:
    """One container of the platform's image, as its deployment starts it."""

    deployment: str  # "compose" or "kubernetes"
    name: str  # the Compose service, or the Kubernetes workload
    command: tuple[str, ...]  # what follows the image's entrypoint, `python -m`
    environment: dict[str, str]
    files: dict[PurePosixPath, str]  # mounted files by path in the container
    ports: dict[str, int] = field(default_factory=dict)  # Kubernetes containerPort by name

    @property
    def package(self) -> str:
        """The Python package `python -m` starts: a service, or `schedctl`."""
        return self.command[0]

    def __str__(self) -> str:
        return f"{self.deployment}:{self.name}"


# --- the image ---------------------------------------------------------------------------------


def _instructions(path: Path) -> list[tuple[str, str]]:
    """A Dockerfile's instructions, continuation lines joined, comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        text = pending + line
        pending = ""
        keyword, _, rest = text.partition(" ")
        result.append((keyword.upper(), rest.strip()))
    return result


@functools.cache
def image_environment() -> dict[str, str]:
    """The `ENV` of the Dockerfile's final stage: what every container starts with."""
    instructions = _instructions(DOCKERFILE)
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    environment: dict[str, str] = {}
    for keyword, rest in instructions[last_from:]:
        if keyword == "ENV":
            for word in shlex.split(rest):
                name, _, value = word.partition("=")
                environment[name] = value
    return environment


def image_command() -> tuple[str, ...]:
    """The Dockerfile's `CMD`: what `python -m` starts when a deployment names nothing."""
    commands = [rest for keyword, rest in _instructions(DOCKERFILE) if keyword == "CMD"]
    return tuple(yaml.safe_load(commands[-1]))


def run_instructions() -> list[str]:
    """The `RUN` instructions of every stage, in order."""
    return [rest for keyword, rest in _instructions(DOCKERFILE) if keyword == "RUN"]


# --- Docker Compose ----------------------------------------------------------------------------

_INTERPOLATION = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def _interpolate(text: str) -> str:
    """Compose's `${NAME:-default}`, resolved as with none of the variables set."""
    return _INTERPOLATION.sub(lambda match: match.group(2) or "", text)


def _folder_files(source: Path, target: PurePosixPath) -> dict[PurePosixPath, str]:
    # A developer's own config/secrets.properties is never committed: what is checked is what
    # the repository ships.
    return {
        target / path.relative_to(source).as_posix(): path.read_text()
        for path in sorted(source.rglob("*"))
        if path.is_file() and not (source == CONFIG and path.name == "secrets.properties")
    }


@functools.cache
def compose_document() -> dict[str, Any]:
    return yaml.safe_load(_interpolate(COMPOSE_FILE.read_text()))


def _runs_the_image(service: dict[str, Any]) -> bool:
    build = service.get("build") or {}
    return isinstance(build, dict) and build.get("dockerfile") == "deploy/Dockerfile"


def _compose_environment(service: dict[str, Any]) -> dict[str, str]:
    if "env_file" in service:
        raise Unsupported("env_file")
    value = service.get("environment") or {}
    if isinstance(value, list):
        value = dict(item.split("=", 1) for item in value)
    return {name: "" if v is None else str(v) for name, v in value.items()}


def _compose_files(service: dict[str, Any], document: dict[str, Any]) -> dict[PurePosixPath, str]:
    files: dict[PurePosixPath, str] = {}
    for volume in service.get("volumes") or []:
        if not isinstance(volume, dict) or volume.get("type") != "bind":
            raise Unsupported(f"volume {volume!r}")
        source = (COMPOSE_FILE.parent / volume["source"]).resolve()
        target = PurePosixPath(volume["target"])
        if source.is_dir():
            files.update(_folder_files(source, target))
        else:
            files[target] = source.read_text()
    for secret in service.get("secrets") or []:
        if isinstance(secret, str):
            secret = {"source": secret}
        target = PurePosixPath("/run/secrets") / secret.get("target", secret["source"])
        source = COMPOSE_FILE.parent / document["secrets"][secret["source"]]["file"]
        files[target] = source.read_text()
    return files


@functools.cache
def compose_containers() -> list[Container]:
    """Every Compose service that runs the platform's image, as Compose starts it."""
    document = compose_document()
    containers = []
    for name, service in document["services"].items():
        if not _runs_the_image(service):
            continue
        containers.append(
            Container(
                deployment="compose",
                name=name,
                command=tuple(service.get("command") or image_command()),
                environment={**image_environment(), **_compose_environment(service)},
                files=_compose_files(service, document),
            )
        )
    return containers


def compose_published(service: str) -> list[tuple[str, int, int]]:
    """The ports `service` publishes on the Docker host: (host address, host port, port)."""
    published = []
    for entry in compose_document()["services"][service].get("ports") or []:
        parts = str(entry).split(":")
        if len(parts) != 3:
            raise Unsupported(f"port {entry!r}: name the host address")
        published.append((parts[0], int(parts[1]), int(parts[2])))
    return published


# --- Kubernetes --------------------------------------------------------------------------------


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@functools.cache
def manifests() -> list[dict[str, Any]]:
    """Every object of the manifests `kubectl apply` is told to apply (migrate/ included)."""
    return [doc for path in sorted(KUBERNETES.rglob("*.yaml")) for doc in _documents(path)]


def _fill_placeholders(text: str) -> str:
    lines = []
    for line in text.splitlines():
        key = line.partition("=")[0].strip()
        if PLACEHOLDER in line and key in PLACEHOLDER_LINES:
            line = f"{key}={PLACEHOLDER_LINES[key]}"
        lines.append(line.replace(PLACEHOLDER, PLACEHOLDER_VALUE))
    return "\n".join(lines) + "\n"


@functools.cache
def operator_objects() -> list[dict[str, Any]]:
    """What deploy/README.md has the operator create beside the manifests: the ConfigMap of
    config/, and the Secrets of the templates with their placeholders filled in."""
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": CONFIG_MAP, "namespace": NAMESPACE},
        "data": {
            path.name: path.read_text()
            for path in sorted(CONFIG.glob("*.properties"))
            if path.name != "secrets.properties"
        },
    }
    secrets = []
    for path in sorted(KUBERNETES.rglob("*.yaml.template")):
        for doc in _documents(path):
            if doc["kind"] == "Secret":
                data = {k: _fill_placeholders(v) for k, v in doc.get("stringData", {}).items()}
                secrets.append({**doc, "stringData": data})
    return [config_map, *secrets]


def _find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for obj in objects:
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return obj
    raise LookupError(f"no {kind} {name!r}: a pod that needs it would not start")


def _data(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, str]:
    obj = _find(objects, kind, name)
    if "data" in obj and kind == "Secret":
        raise Unsupported(f"Secret {name}: base64 data")
    return dict(obj.get("stringData" if kind == "Secret" else "data") or {})


def _selected(
    data: dict[str, str], items: list[dict[str, str]] | None, where: str
) -> dict[str, str]:
    if items is None:
        return dict(data)
    selected = {}
    for item in items:
        if item["key"] not in data:
            raise LookupError(f"{where} has no key {item['key']!r}")
        selected[item["path"]] = data[item["key"]]
    return selected


def _volume_files(volume: dict[str, Any], objects: list[dict[str, Any]]) -> dict[str, str]:
    """The files of a pod volume, by path inside it."""
    if "emptyDir" in volume:
        return {}
    if "configMap" in volume:
        source = volume["configMap"]
        data = _data(objects, "ConfigMap", source["name"])
        return _selected(data, source.get("items"), f"ConfigMap {source['name']}")
    if "secret" in volume:
        source = volume["secret"]
        data = _data(objects, "Secret", source["secretName"])
        return _selected(data, source.get("items"), f"Secret {source['secretName']}")
    if "projected" in volume:
        files: dict[str, str] = {}
        for source in volume["projected"]["sources"]:
            kind = "ConfigMap" if "configMap" in source else "Secret"
            ref = source["configMap" if kind == "ConfigMap" else "secret"]
            data = _data(objects, kind, ref["name"])
            files.update(_selected(data, ref.get("items"), f"{kind} {ref['name']}"))
        return files
    raise Unsupported(f"volume {volume['name']}")


def _env_value(variable: dict[str, Any], objects: list[dict[str, Any]]) -> str:
    if "value" in variable:
        return str(variable["value"])
    source = variable["valueFrom"]
    for key, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
        if key in source:
            ref = source[key]
            data = _data(objects, kind, ref["name"])
            if ref["key"] not in data:
                raise LookupError(f"{kind} {ref['name']} has no key {ref['key']!r}")
            return data[ref["key"]]
    raise Unsupported(f"env {variable['name']}")


def _pod_container(
    workload: dict[str, Any], container: dict[str, Any], objects: list[dict[str, Any]]
) -> Container:
    pod = workload["spec"]["template"]["spec"]
    if "command" in container:
        raise Unsupported(f"{container['name']}: command replaces the image's entrypoint")
    environment = dict(image_environment())
    for source in container.get("envFrom") or []:
        kind = "ConfigMap" if "configMapRef" in source else "Secret"
        ref = source["configMapRef" if kind == "ConfigMap" else "secretRef"]
        environment.update(_data(objects, kind, ref["name"]))
    for variable in container.get("env") or []:
        environment[variable["name"]] = _env_value(variable, objects)
    volumes = {volume["name"]: volume for volume in pod.get("volumes") or []}
    files: dict[PurePosixPath, str] = {}
    for mount in container.get("volumeMounts") or []:
        if "subPath" in mount:
            raise Unsupported(f"{container['name']}: subPath")
        root = PurePosixPath(mount["mountPath"])
        for path, text in _volume_files(volumes[mount["name"]], objects).items():
            files[root / path] = text
    return Container(
        deployment="kubernetes",
        name=workload["metadata"]["name"],
        command=tuple(container.get("args") or image_command()),
        environment=environment,
        files=files,
        ports={port.get("name", ""): port["containerPort"] for port in container.get("ports", [])},
    )


@functools.cache
def kubernetes_containers() -> list[Container]:
    """The container of every Deployment and Job of the manifests, as its pod starts it."""
    objects = manifests() + operator_objects()
    return [
        _pod_container(workload, container, objects)
        for workload in objects
        if workload["kind"] in ("Deployment", "Job")
        for container in workload["spec"]["template"]["spec"]["containers"]
    ]


def kubernetes_service(host: str) -> dict[str, Any] | None:
    """The Service of this namespace that `host` names from a pod of the namespace, if any."""
    suffixes = ("", f".{NAMESPACE}", f".{NAMESPACE}.svc", f".{NAMESPACE}.svc.cluster.local")
    for obj in manifests():
        if obj["kind"] == "Service" and obj["metadata"].get("namespace") == NAMESPACE:
            if host in {obj["metadata"]["name"] + suffix for suffix in suffixes}:
                return obj
    return None


def service_backends(service: dict[str, Any], port: int | str) -> list[tuple[str, int]]:
    """The (workload, container port) pairs that `service`'s port (number or name) reaches."""
    for entry in service["spec"]["ports"]:
        if port in (entry["port"], entry.get("name")):
            target = entry.get("targetPort", entry["port"])
            break
    else:
        return []
    selector = service["spec"]["selector"].items()
    backends = []
    for workload in manifests():
        if workload["kind"] != "Deployment":
            continue
        labels = workload["spec"]["template"]["metadata"]["labels"].items()
        if not selector <= labels:
            continue
        for container in workload["spec"]["template"]["spec"]["containers"]:
            for declared in container.get("ports", []):
                if target in (declared["containerPort"], declared.get("name")):
                    backends.append((workload["metadata"]["name"], declared["containerPort"]))
    return backends


# --- the settings a container resolves ------------------------------------------------------


def settings_class(package: str) -> type[config.ServiceSettings]:
    if package == "schedctl":
        return platform.PlatformSettings
    return importlib.import_module(f"{package}.settings").Settings


def _rebased(location: str, root: Path) -> str:
    """`location` with each absolute path moved under `root`, prefixes kept."""
    items = []
    for item in (part.strip() for part in location.split(",")):
        prefix = config.OPTIONAL_PREFIX if item.startswith(config.OPTIONAL_PREFIX) else ""
        path = item.removeprefix(prefix).removeprefix("file:")
        if path.startswith("/"):
            path = str(root / path.lstrip("/"))
        items.append(prefix + path)
    return ",".join(items)


def resolve(
    container: Container, root: Path, monkeypatch: pytest.MonkeyPatch
) -> config.ServiceSettings:
    """The settings `container`'s process builds at start, its mounts written under `root`."""
    for path, text in container.files.items():
        target = root / path.relative_to("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    names = {name.lower() for name in LOCATION_VARIABLES}
    for package in (*SERVICES, "schedctl"):
        names.update(settings_class(package).model_fields)
    for name in list(os.environ):
        if name.lower() in names:  # the test runner's own settings must not leak in
            monkeypatch.delenv(name)
    for name, value in container.environment.items():
        if name == "PATH":  # names no setting; the test process keeps its own
            continue
        if name in LOCATION_VARIABLES:
            value = _rebased(value, root)
        monkeypatch.setenv(name, value)
    try:
        return config.load(settings_class(container.package))
    except config.ConfigError as exc:
        pytest.fail(f"{container} stops at start: configuration error: {exc}")
