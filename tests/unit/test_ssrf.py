"""The executor's refusal of a non-public address (`executor_service.ssrf`); the rule it applies
is `libs.security.addresses` (test_addresses.py), the guard itself is tested against real
connections in tests/integration/test_executor_http.py."""

from __future__ import annotations

from executor_service import ssrf


def test_the_refusal_names_the_host_not_the_address():
    error = ssrf.AddressNotAllowed("internal.example", "10.0.0.5")
    assert "internal.example" in str(error)
    assert "10.0.0.5" not in str(error)
    assert error.address == "10.0.0.5"
