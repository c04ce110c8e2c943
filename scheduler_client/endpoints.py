"""Where the three services answer: each at its own URL (local ports, or separate hosts), or
all three behind one ingress at one base URL (deploy/kubernetes/20-ingress.yaml)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Service = Literal["jobs", "users", "auth"]

LOCAL_PORTS = {"jobs": 8000, "users": 8001, "auth": 8002}  # what `schedctl up` listens on


def _base(url: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an http(s) URL: {url!r}")
    return url.rstrip("/")


@dataclass(frozen=True)
class Endpoints:
    """Base URLs of the job, user and auth services (a path prefix is kept)."""

    jobs: str
    users: str
    auth: str

    def __post_init__(self) -> None:
        for service in LOCAL_PORTS:
            object.__setattr__(self, service, _base(getattr(self, service)))

    @classmethod
    def single(cls, base_url: str) -> Endpoints:
        """All three services behind one base URL (an ingress)."""
        return cls(jobs=base_url, users=base_url, auth=base_url)

    @classmethod
    def local(cls, host: str = "127.0.0.1") -> Endpoints:
        """The platform `schedctl up` runs on this machine."""
        return cls(**{service: f"http://{host}:{port}" for service, port in LOCAL_PORTS.items()})

    def url(self, service: Service, path: str) -> str:
        return getattr(self, service) + path
