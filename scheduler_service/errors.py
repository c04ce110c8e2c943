"""The scheduler service's own errors, named by meaning.

The faults its loops back off from (the database or the broker is away) are the workers' own
(`libs.infra.errors`); what is here is the scheduler's alone.
"""

from __future__ import annotations


class StoredScheduleInvalid(Exception):
    """A job's stored schedule or retry policy cannot be read; the job is failed rather than
    retried forever."""
