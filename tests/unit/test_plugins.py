"""Job types from other distributions: `libs.scheduling.job_types.load` finds them through the
entry-point group as it would installed ones (here, dist-info folders put on `sys.path`), the
registry it builds validates their payloads like the built-in ones, and it refuses, by name, a
plug-in that reuses a type's name or whose entry point is not a `JobType`."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import pytest

from executor_service.registry import Strategies, StrategyUnavailable
from executor_service.settings import Settings
from executor_service.strategies.http import HttpStrategy
from executor_service.strategies.log import LogStrategy
from executor_service.strategy import Resources
from libs.scheduling import job_types
from libs.scheduling.job_types import LogPayload

# The bench's plug-in folder (bench_job_type.py, make_dist.py): on sys.path for these tests, as
# it is on the PYTHONPATH of the benchmark's processes (bench/ is not an installed package).
PLUGIN_DIR = Path(__file__).resolve().parents[2] / "bench" / "plugin"


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder on `sys.path` for dist-info folders and plug-in modules, for the registries
    the test builds (`job_types.load`) to find them; off `sys.path` once the test is over."""
    monkeypatch.syspath_prepend(str(PLUGIN_DIR))
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


@pytest.fixture
def make_dist(plugins: Path) -> ModuleType:
    return importlib.import_module("make_dist")


def install_module(folder: Path, name: str, source: str) -> None:
    (folder / f"{name}.py").write_text(source, encoding="utf-8")


@pytest.fixture
def bench_plugin(plugins: Path, make_dist: ModuleType) -> Path:
    make_dist.write_dist_info(plugins)
    return plugins


def test_the_bench_plugin_is_found_through_its_entry_point(bench_plugin):
    types = job_types.load()
    assert types.known() == ["bench", "http", "kafka", "log"]
    bench = types.get("bench")
    assert bench.name == "bench"
    assert bench.payload_model.__module__ == "bench_job_type"  # as the entry point names it
    assert callable(bench.strategy)  # a plug-in brings the strategy that runs its type


def test_its_payloads_are_validated_like_a_built_in_types(bench_plugin):
    types = job_types.load()
    assert types.validate_payload("bench", {}) == {"tag": None}
    assert types.validate_payload("bench", {"tag": "burst-1"}) == {"tag": "burst-1"}

    with pytest.raises(job_types.InvalidPayload) as unknown_field:
        types.validate_payload("bench", {"tga": "x"})
    assert [field for field, _ in unknown_field.value.errors] == ["payload.tga"]
    with pytest.raises(job_types.InvalidPayload) as nul_byte:
        types.validate_payload("bench", {"tag": "a\x00b"})
    assert [field for field, _ in nul_byte.value.errors] == ["payload.tag"]


def test_its_schema_is_what_the_job_service_shows(bench_plugin):
    types = job_types.load()
    schema = types.json_schema("bench")

    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == {"tag"}
    for example in schema["examples"]:
        types.validate_payload("bench", example)


def test_without_the_plugin_the_built_in_types_are_back(plugins):
    types = job_types.load()
    assert types.known() == ["http", "kafka", "log"]
    with pytest.raises(job_types.UnknownJobType):
        types.validate_payload("bench", {})


def test_a_registry_built_before_a_plugin_is_installed_keeps_its_types(plugins, make_dist):
    # Each service reads the types once, at start: what is installed later is for the next.
    before = job_types.load()
    make_dist.write_dist_info(plugins)

    assert before.known() == ["http", "kafka", "log"]
    assert job_types.load().known() == ["bench", "http", "kafka", "log"]


def test_a_plugin_reusing_a_built_in_name_is_refused_naming_it(plugins, make_dist):
    install_module(
        plugins,
        "shadow_http",
        "from libs.scheduling.job_types import JobType, LogPayload\n"
        "JOB_TYPE = JobType('http', LogPayload, 'shadow_http:create')\n",
    )
    make_dist.write_dist_info(
        plugins, name="shadow_http", entry_points={"http": "shadow_http:JOB_TYPE"}
    )

    with pytest.raises(job_types.PluginError, match="job type 'http' is registered twice"):
        job_types.load()


def test_an_entry_point_that_is_not_a_job_type_is_refused_naming_it(plugins, make_dist):
    install_module(plugins, "not_a_type", "JOB_TYPE = {'name': 'report'}\n")
    make_dist.write_dist_info(
        plugins, name="not_a_type", entry_points={"report": "not_a_type:JOB_TYPE"}
    )

    with pytest.raises(job_types.PluginError) as caught:
        job_types.load()
    assert "entry point report = not_a_type:JOB_TYPE" in str(caught.value)
    assert "is not a libs.scheduling.job_types.JobType" in str(caught.value)


def test_a_plugin_that_cannot_be_imported_stops_the_registry(plugins, make_dist):
    make_dist.write_dist_info(
        plugins, name="broken", entry_points={"broken": "missing_module_xyz:JOB_TYPE"}
    )

    with pytest.raises(job_types.PluginError, match="missing_module_xyz"):
        job_types.load()


def test_a_plugin_that_names_no_strategy_is_refused_naming_it(plugins, make_dist):
    install_module(
        plugins,
        "strategyless",
        "from libs.scheduling.job_types import JobType, LogPayload\n"
        "JOB_TYPE = JobType('report', LogPayload)\n",
    )
    make_dist.write_dist_info(
        plugins, name="strategyless", entry_points={"report": "strategyless:JOB_TYPE"}
    )

    with pytest.raises(job_types.PluginError, match="job type 'report' names no strategy"):
        job_types.load()


def test_a_plugin_with_an_unusable_name_is_refused_naming_it(plugins, make_dist):
    install_module(
        plugins,
        "shouting",
        "from libs.scheduling.job_types import JobType, LogPayload\n"
        "JOB_TYPE = JobType('Report', LogPayload, 'shouting:create')\n",
    )
    make_dist.write_dist_info(plugins, name="shouting", entry_points={"r": "shouting:JOB_TYPE"})

    with pytest.raises(job_types.PluginError, match="job type name 'Report' must match"):
        job_types.load()


# --- the executor's strategies -------------------------------------------------------------------

RESOURCES = Resources(
    Settings(database_url="postgresql://unused", kafka_bootstrap_servers="unused"), None, None
)


async def test_the_executor_runs_a_plugins_type_with_the_plugins_strategy(bench_plugin):
    strategies = Strategies.build(RESOURCES, job_types.load())
    try:
        bench = importlib.import_module("bench_job_type")
        assert isinstance(strategies.get("bench"), bench.BenchStrategy)
        # and the built-in types with its own
        assert isinstance(strategies.get("log"), LogStrategy)
        assert isinstance(strategies.get("http"), HttpStrategy)
    finally:
        await strategies.close()


def test_a_type_that_no_strategy_runs_stops_the_executor_naming_it():
    # Neither built in (the executor would have its own) nor a plug-in (it would bring one).
    types = job_types.JobTypes([job_types.JobType("report", LogPayload)])

    with pytest.raises(StrategyUnavailable, match="job type 'report': no strategy runs it"):
        Strategies.build(RESOURCES, types)
