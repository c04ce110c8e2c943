"""How `libs.infra.serve` has uvicorn serve every service: forwarded headers are believed only from
the proxies `http.trusted.proxies` names, and none by default (uvicorn's own default believes
any loopback peer, and its environment variable FORWARDED_ALLOW_IPS, which is not ours)."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from auth_service.settings import Settings as AuthSettings
from executor_service.settings import Settings as ExecutorSettings
from job_service.settings import Settings as JobSettings
from libs.infra import config, serve
from scheduler_service.settings import Settings as SchedulerSettings
from user_service.settings import Settings as UserSettings

SERVICE_CLASSES = (UserSettings, AuthSettings, JobSettings, SchedulerSettings, ExecutorSettings)
REQUIRED = {"database_url": "postgresql://app@localhost/app", "kafka_bootstrap_servers": "k:9092"}


@pytest.mark.parametrize("settings_cls", SERVICE_CLASSES, ids=lambda c: c.service_name)
def test_no_service_believes_forwarded_headers_by_default(
    settings_cls: type[config.ServiceSettings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "*")

    served = serve.server_config(settings_cls(**REQUIRED), FastAPI())

    assert served.proxy_headers is False
    assert served.forwarded_allow_ips == []


@pytest.mark.parametrize("settings_cls", SERVICE_CLASSES, ids=lambda c: c.service_name)
def test_the_named_proxies_are_the_only_ones_believed(
    settings_cls: type[config.ServiceSettings],
) -> None:
    settings = settings_cls(**REQUIRED, http_trusted_proxies=" 10.0.0.0/8, 192.0.2.7,::1 ")

    served = serve.server_config(settings, FastAPI())

    assert served.proxy_headers is True
    assert served.forwarded_allow_ips == ["10.0.0.0/8", "192.0.2.7/32", "::1/128"]


@pytest.mark.parametrize("value", ["*", "proxy.internal", "10.0.0.0/33", "10.0.0.1, *"])
def test_a_trusted_proxy_must_be_an_address_or_a_network(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", REQUIRED["database_url"])
    monkeypatch.setenv("HTTP_TRUSTED_PROXIES", value)
    monkeypatch.delenv("CONFIG_LOCATION", raising=False)
    monkeypatch.delenv("SPRING_CONFIG_LOCATION", raising=False)

    with pytest.raises(config.ConfigError) as refused:
        config.load(JobSettings)

    assert "http_trusted_proxies" in str(refused.value)
    assert "not an IP address or network" in str(refused.value)
