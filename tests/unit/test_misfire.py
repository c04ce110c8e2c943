"""libs.scheduling.misfire: each policy with the occurrence inside and outside its grace, catch-up
bounded by max_catch_up, and max_runs / end_at respected in every case."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from libs.scheduling import schedule
from libs.scheduling.misfire import Decision, MisfirePolicy, decide

T0 = datetime(2026, 6, 1, 12, tzinfo=UTC)
GRACE_S = 30


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


EVERY_MINUTE = schedule.FixedRate(interval_s=60, anchor=T0)

CASES = [
    # (id, policy, schedule, now, runs, max_catch_up, expected decision)
    *(
        (
            f"{policy.value}-within-grace",
            policy,
            EVERY_MINUTE,
            at(10),
            0,
            100,
            Decision(fire=[T0], next_run_at=at(60), misfired=False),
        )
        for policy in MisfirePolicy
    ),
    (
        "grace-boundary-is-within",
        MisfirePolicy.SKIP,
        EVERY_MINUTE,
        at(GRACE_S),
        0,
        100,
        Decision(fire=[T0], next_run_at=at(60), misfired=False),
    ),
    (
        "early-is-within",
        MisfirePolicy.SKIP,
        EVERY_MINUTE,
        at(-5),
        0,
        100,
        Decision(fire=[T0], next_run_at=at(60), misfired=False),
    ),
    (
        "run-once-late",
        MisfirePolicy.RUN_ONCE,
        EVERY_MINUTE,
        at(250),
        0,
        100,
        Decision(fire=[T0], next_run_at=at(300), misfired=True),
    ),
    (
        "skip-late",
        MisfirePolicy.SKIP,
        EVERY_MINUTE,
        at(250),
        0,
        100,
        Decision(fire=[], next_run_at=at(300), misfired=True),
    ),
    (
        "run-all-late",
        MisfirePolicy.RUN_ALL,
        EVERY_MINUTE,
        at(250),
        0,
        100,
        Decision(fire=[T0, at(60), at(120), at(180), at(240)], next_run_at=at(300), misfired=True),
    ),
    (
        "run-all-late-on-a-tick",
        MisfirePolicy.RUN_ALL,
        EVERY_MINUTE,
        at(120),
        0,
        100,
        Decision(fire=[T0, at(60), at(120)], next_run_at=at(180), misfired=True),
    ),
    (
        "run-all-bounded-by-max-catch-up",
        MisfirePolicy.RUN_ALL,
        EVERY_MINUTE,
        at(86_400 + 10),
        0,
        3,
        Decision(fire=[T0, at(60), at(120)], next_run_at=at(86_400 + 60), misfired=True),
    ),
    (
        "run-all-bounded-by-max-runs",
        MisfirePolicy.RUN_ALL,
        EVERY_MINUTE.model_copy(update={"max_runs": 5}),
        at(600),
        2,
        100,
        Decision(fire=[T0, at(60), at(120)], next_run_at=None, misfired=True),
    ),
    (
        "run-all-bounded-by-end",
        MisfirePolicy.RUN_ALL,
        EVERY_MINUTE.model_copy(update={"end_at": at(100)}),
        at(600),
        0,
        100,
        Decision(fire=[T0, at(60)], next_run_at=None, misfired=True),
    ),
    (
        "run-once-late-last-run",
        MisfirePolicy.RUN_ONCE,
        EVERY_MINUTE.model_copy(update={"max_runs": 1}),
        at(600),
        0,
        100,
        Decision(fire=[T0], next_run_at=None, misfired=True),
    ),
    (
        "within-grace-last-run",
        MisfirePolicy.RUN_ONCE,
        EVERY_MINUTE.model_copy(update={"max_runs": 4}),
        at(1),
        3,
        100,
        Decision(fire=[T0], next_run_at=None, misfired=False),
    ),
    (
        "skip-late-past-end",
        MisfirePolicy.SKIP,
        EVERY_MINUTE.model_copy(update={"end_at": at(100)}),
        at(600),
        0,
        100,
        Decision(fire=[], next_run_at=None, misfired=True),
    ),
    (
        "runs-already-exhausted",
        MisfirePolicy.RUN_ALL,
        EVERY_MINUTE.model_copy(update={"max_runs": 2}),
        at(600),
        2,
        100,
        Decision(fire=[], next_run_at=None, misfired=False),
    ),
    (
        "occurrence-after-end",
        MisfirePolicy.RUN_ONCE,
        EVERY_MINUTE.model_copy(update={"end_at": at(-1)}),
        at(600),
        0,
        100,
        Decision(fire=[], next_run_at=None, misfired=False),
    ),
    (
        "once-skipped",
        MisfirePolicy.SKIP,
        schedule.Once(at=T0),
        at(600),
        0,
        100,
        Decision(fire=[], next_run_at=None, misfired=True),
    ),
    (
        "once-run-all",
        MisfirePolicy.RUN_ALL,
        schedule.Once(at=T0),
        at(600),
        0,
        100,
        Decision(fire=[T0], next_run_at=None, misfired=True),
    ),
    (
        "fixed-delay-run-all-runs-the-one-pending",
        MisfirePolicy.RUN_ALL,
        schedule.FixedDelay(delay_s=60),
        at(600),
        0,
        100,
        Decision(fire=[T0], next_run_at=at(660), misfired=True),
    ),
    (
        "cron-run-all",
        MisfirePolicy.RUN_ALL,
        schedule.Cron(expression="*/2 * * * *"),
        at(300),
        0,
        100,
        Decision(fire=[T0, at(120), at(240)], next_run_at=at(360), misfired=True),
    ),
    (
        "cron-run-once",
        MisfirePolicy.RUN_ONCE,
        schedule.Cron(expression="*/2 * * * *"),
        at(300),
        0,
        100,
        Decision(fire=[T0], next_run_at=at(360), misfired=True),
    ),
]


@pytest.mark.parametrize(
    ("policy", "s", "now", "runs", "max_catch_up", "expected"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_decide(
    policy: MisfirePolicy,
    s: schedule.Schedule,
    now: datetime,
    runs: int,
    max_catch_up: int,
    expected: Decision,
) -> None:
    decision = decide(
        policy,
        s,
        scheduled_for=T0,
        now=now,
        grace_s=GRACE_S,
        runs=runs,
        max_catch_up=max_catch_up,
    )
    assert decision == expected


def test_policy_values_are_what_the_api_and_database_store() -> None:
    assert [p.value for p in MisfirePolicy] == ["run_once", "skip", "run_all"]


@pytest.mark.parametrize(
    "kwargs",
    [{"grace_s": -1}, {"max_catch_up": 0}, {"runs": -1}, {"now": datetime(2026, 6, 1)}],
    ids=["negative-grace", "no-catch-up", "negative-runs", "naive-now"],
)
def test_bad_arguments_are_refused(kwargs: dict) -> None:
    arguments = {"scheduled_for": T0, "now": at(5), "grace_s": GRACE_S, "runs": 0} | kwargs
    with pytest.raises(ValueError):
        decide(MisfirePolicy.RUN_ONCE, EVERY_MINUTE, **arguments)
