"""The strategy registry: one strategy per job type, built at start from `libs.job_types`.

Built-in types and those of installed plug-ins (entry-point group
`scheduling_platform.job_types`, see docs/plugins.md) are treated alike: each `JobType` names
a factory, which is called once with the executor's `Resources`. A factory that fails stops the
executor at start, naming the type, instead of failing every job of that type later.
"""

from __future__ import annotations

import inspect
import pkgutil
from collections.abc import Mapping

from executor_service.strategy import Resources, Strategy
from libs import job_types, log


class StrategyUnavailable(RuntimeError):
    """A job type's strategy could not be built."""


class Strategies:
    def __init__(self, strategies: Mapping[str, Strategy]):
        self._strategies = dict(strategies)

    @classmethod
    def build(cls, resources: Resources) -> Strategies:
        built: dict[str, Strategy] = {}
        for name, job_type in job_types.registry().items():
            factory = job_type.strategy
            try:
                if isinstance(factory, str):
                    factory = pkgutil.resolve_name(factory)
                built[name] = factory(resources)
            except Exception as exc:
                raise StrategyUnavailable(
                    f"job type {name!r}: its strategy ({job_type.strategy!r}) cannot be built: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
        log.get().info("strategies_ready", types=sorted(built))
        return cls(built)

    def get(self, type_name: str) -> Strategy | None:
        return self._strategies.get(type_name)

    async def close(self) -> None:
        for name, strategy in self._strategies.items():
            close = getattr(strategy, "close", None)
            if close is None:
                continue
            try:
                result = close()
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:
                log.get().warning("strategy_close_failed", type=name, error=str(exc)[:200])
