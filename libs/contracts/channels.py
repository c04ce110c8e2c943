"""PostgreSQL `LISTEN`/`NOTIFY` channels: the names writers and listeners must agree on.

A notification is delivered when the transaction that sent it commits, and not at all when it
rolls back, so a listener never hears of a write that did not happen. Notifications are a hint
that shortens a wait, never the source of truth: a listener that missed one (it was
reconnecting) finds the work by its regular query.
"""

from __future__ import annotations

# The job service sends this whenever a write sets a job's `next_run_at` (create, batch create,
# update, resume, run now, dead-letter replay). The payload is the earliest `next_run_at` the
# transaction wrote, as an ISO 8601 UTC date-time; a scheduler sleeping until a later time
# wakes up early.
JOBS_DUE = "scheduler_jobs_due"

# A scheduler sends this once a batch of dispatches is on the broker (acknowledged), with the
# dispatch topic as the payload; an executor that stopped fetching (nothing came for a while)
# fetches again at once (`executor_service.fetching`).
DISPATCHES_PUBLISHED = "executor_dispatches_published"
