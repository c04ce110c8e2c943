"""Refusing at creation what the executors would refuse to call: an `http` job whose URL names,
as a literal address, one that is not public and not in `http.allowed.networks`.

The executors' check at connection time (`executor_service.ssrf`, after name resolution) is
the one that protects; this one only tells the job's owner at once, with a 422 naming the field,
instead of through a failed run. Names are not resolved here: what a name resolves to when the
job runs is what counts, and only the executor sees that.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from job_service import errors
from libs.security import addresses

HTTP_TYPE = "http"


def check(
    type_name: str,
    payload: Mapping[str, Any],
    allowed_networks: Sequence[addresses.IpNetwork],
    prefix: str,
) -> None:
    """Raise `InvalidRequest` naming `{prefix}.payload.url` when `payload` (valid for its type)
    is an http job's whose URL host is an address the executors would refuse."""
    if type_name != HTTP_TYPE:
        return
    host = urlsplit(payload["url"]).hostname
    ip = addresses.literal(host) if host else None
    if ip is None or addresses.is_allowed(ip, allowed_networks):
        return
    raise errors.InvalidRequest.field(
        f"{prefix}.payload.url",
        f"names {ip}, which is not a public address: the executors refuse to call it",
        "address_not_allowed",
    )
