"""Job types from other distributions: `libs.job_types.registry` finds them through the
entry-point group as it would installed ones (here, dist-info folders put on `sys.path`),
validates their payloads like the built-in ones, and refuses, by name, a plug-in that reuses a
type's name or whose entry point is not a `JobType`."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from libs import job_types

# The bench's plug-in folder (bench_job_type.py, make_dist.py): on sys.path for these tests, as
# it is on the PYTHONPATH of the benchmark's processes (bench/ is not an installed package).
PLUGIN_DIR = Path(__file__).resolve().parents[2] / "bench" / "plugin"


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on `sys.path` for dist-info folders and plug-in modules; the registry is read
    again from it, and read again without it once the test is over."""
    monkeypatch.syspath_prepend(str(PLUGIN_DIR))
    monkeypatch.syspath_prepend(str(tmp_path))
    job_types.registry.cache_clear()
    yield tmp_path
    monkeypatch.undo()
    job_types.registry.cache_clear()


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
    assert job_types.known() == ["bench", "http", "kafka", "log"]
    bench = job_types.get("bench")
    assert bench.name == "bench"
    assert bench.payload_model.__module__ == "bench_job_type"  # as the entry point names it


def test_its_payloads_are_validated_like_a_built_in_types(bench_plugin):
    assert job_types.validate_payload("bench", {}) == {"tag": None}
    assert job_types.validate_payload("bench", {"tag": "burst-1"}) == {"tag": "burst-1"}

    with pytest.raises(job_types.InvalidPayload) as unknown_field:
        job_types.validate_payload("bench", {"tga": "x"})
    assert [field for field, _ in unknown_field.value.errors] == ["payload.tga"]
    with pytest.raises(job_types.InvalidPayload) as nul_byte:
        job_types.validate_payload("bench", {"tag": "a\x00b"})
    assert [field for field, _ in nul_byte.value.errors] == ["payload.tag"]


def test_its_schema_is_what_the_job_service_shows(bench_plugin):
    schema = job_types.json_schema("bench")

    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == {"tag"}
    for example in schema["examples"]:
        job_types.validate_payload("bench", example)


def test_without_the_plugin_the_built_in_types_are_back(plugins):
    assert job_types.known() == ["http", "kafka", "log"]
    with pytest.raises(job_types.UnknownJobType):
        job_types.validate_payload("bench", {})


def test_a_plugin_reusing_a_built_in_name_is_refused_naming_it(plugins, make_dist):
    install_module(
        plugins,
        "shadow_http",
        "from libs.job_types import JobType, LogPayload\n"
        "JOB_TYPE = JobType('http', LogPayload, 'shadow_http:create')\n",
    )
    make_dist.write_dist_info(
        plugins, name="shadow_http", entry_points={"http": "shadow_http:JOB_TYPE"}
    )

    with pytest.raises(job_types.PluginError, match="job type 'http' is registered twice"):
        job_types.registry()


def test_an_entry_point_that_is_not_a_job_type_is_refused_naming_it(plugins, make_dist):
    install_module(plugins, "not_a_type", "JOB_TYPE = {'name': 'report'}\n")
    make_dist.write_dist_info(
        plugins, name="not_a_type", entry_points={"report": "not_a_type:JOB_TYPE"}
    )

    with pytest.raises(job_types.PluginError) as caught:
        job_types.registry()
    assert "entry point report = not_a_type:JOB_TYPE" in str(caught.value)
    assert "is not a libs.job_types.JobType" in str(caught.value)


def test_a_plugin_that_cannot_be_imported_stops_the_registry(plugins, make_dist):
    make_dist.write_dist_info(
        plugins, name="broken", entry_points={"broken": "missing_module_xyz:JOB_TYPE"}
    )

    with pytest.raises(job_types.PluginError, match="missing_module_xyz"):
        job_types.registry()


def test_a_plugin_with_an_unusable_name_is_refused_naming_it(plugins, make_dist):
    install_module(
        plugins,
        "shouting",
        "from libs.job_types import JobType, LogPayload\n"
        "JOB_TYPE = JobType('Report', LogPayload, 'shouting:create')\n",
    )
    make_dist.write_dist_info(plugins, name="shouting", entry_points={"r": "shouting:JOB_TYPE"})

    with pytest.raises(job_types.PluginError, match="job type name 'Report' must match"):
        job_types.registry()
