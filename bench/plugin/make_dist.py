"""Describe the `bench` plug-in as an installed distribution, without installing anything.

    python -m bench.plugin.make_dist DIR    # writes DIR/bench_job_type-0.1.dist-info/

A process started with `PYTHONPATH=DIR:<this folder>` then finds the entry point through
`importlib.metadata.entry_points`, exactly as it finds those of installed distributions, and
imports `bench_job_type` from this folder:

    PYTHONPATH=DIR:bench/plugin python -c \
        "from libs import job_types; print(job_types.load().known())"
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path

from libs.scheduling import job_types

PLUGIN_DIR = Path(__file__).resolve().parent  # holds bench_job_type.py
DIST_NAME = "bench_job_type"
DIST_VERSION = "0.1"
BENCH_ENTRY_POINTS = {"bench": "bench_job_type:JOB_TYPE"}


def write_dist_info(
    target: Path,
    *,
    name: str = DIST_NAME,
    version: str = DIST_VERSION,
    entry_points: Mapping[str, str] = BENCH_ENTRY_POINTS,
) -> Path:
    """Write `<name>-<version>.dist-info/` (METADATA and entry_points.txt, whose entry points
    are in the job-type group) into `target`; returns the dist-info folder. By default it
    describes the `bench` type; other names and entry points serve the tests."""
    folder = target / f"{name}-{version}.dist-info"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8"
    )
    lines = [f"[{job_types.ENTRY_POINT_GROUP}]"]
    lines += [f"{entry} = {value}" for entry, value in entry_points.items()]
    (folder / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def python_path(target: Path) -> str:
    """The PYTHONPATH entries that make a process see the plug-in written into `target`."""
    return f"{target}:{PLUGIN_DIR}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", type=Path, help="folder to write the dist-info folder into")
    args = parser.parse_args()
    folder = write_dist_info(args.target)
    print(f"wrote {folder}; run with PYTHONPATH={python_path(args.target)}")


if __name__ == "__main__":
    main()
