"""The built-in strategies of the executor, one module per job type (see `executor_service.
strategy` for what a strategy is).

`BUILT_IN` names the factory of each built-in job type (`libs.scheduling.job_types.BUILT_IN` holds
their payload contracts, which the job service shares); a plug-in's `JobType` carries its own. They
are named by import path, as a plug-in may name its own: importing one strategy module imports
no other.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

BUILT_IN: Mapping[str, str] = MappingProxyType(
    {
        "http": "executor_service.strategies.http:create",
        "kafka": "executor_service.strategies.kafka:create",
        "log": "executor_service.strategies.log:create",
    }
)
