"""The strategy registry: one strategy per job type, built at start from the job types the
executor read (`libs.scheduling.job_types.load`).

Built-in types and those of installed plug-ins (entry-point group
`scheduling_platform.job_types`, see docs/plugins.md) are treated alike: each has a factory, the
executor's own for a built-in type (`strategies.BUILT_IN`), the one its `JobType` names for a
plug-in's, which is called once with the executor's `Resources`. A factory that fails, or a
type that has none, stops the executor at start, naming the type, instead of failing every job
of that type later.
"""

from __future__ import annotations

import inspect
import pkgutil
from collections.abc import Callable, Mapping

from executor_service.strategies import BUILT_IN
from executor_service.strategy import Resources, Strategy
from libs.infra import log
from libs.scheduling import job_types

StrategyFactory = Callable[[Resources], Strategy]


class StrategyUnavailable(RuntimeError):
    """A job type's strategy could not be built."""


class Strategies:
    def __init__(self, strategies: Mapping[str, Strategy]):
        self._strategies = dict(strategies)

    @classmethod
    def build(
        cls,
        resources: Resources,
        types: job_types.JobTypes,
        built_in: Mapping[str, StrategyFactory | str] = BUILT_IN,
    ) -> Strategies:
        """A strategy for each of `types`, from its `JobType`'s factory, else from `built_in`."""
        built: dict[str, Strategy] = {}
        for job_type in types:
            name = job_type.name
            named = job_type.strategy if job_type.strategy is not None else built_in.get(name)
            if named is None:
                raise StrategyUnavailable(f"job type {name!r}: no strategy runs it")
            try:
                factory = pkgutil.resolve_name(named) if isinstance(named, str) else named
                built[name] = factory(resources)
            except Exception as exc:
                raise StrategyUnavailable(
                    f"job type {name!r}: its strategy ({named!r}) cannot be built: "
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
