"""The defaults cannot drop runs: a dispatch lost with a scheduler or the broker is dispatched
again well inside the default misfire grace, so a late-occurrence rule never sees it."""

from __future__ import annotations

from job_service import schemas
from scheduler_service.settings import Settings


def default(model: type, name: str) -> float:
    return model.model_fields[name].default


def test_a_lost_dispatch_is_dispatched_again_well_inside_the_default_misfire_grace():
    # The lease expires, the next recovery pass undoes the claim, the next look dispatches it.
    bound_s = (
        default(Settings, "dispatch_lease_s")
        + default(Settings, "recovery_interval_s")
        + default(Settings, "dispatch_max_sleep_s")
    )
    grace_s = default(schemas.JobCreate, "misfire_grace_s")
    assert bound_s <= grace_s / 2, (bound_s, grace_s)


def test_a_broker_that_is_away_is_not_waited_for_longer_than_a_dispatch_lease():
    # What is not acknowledged in time is handed back before its lease could expire.
    assert default(Settings, "dispatch_publish_timeout_s") < default(Settings, "dispatch_lease_s")
