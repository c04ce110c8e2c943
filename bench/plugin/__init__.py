"""The `bench` job type, a plug-in used by the benchmarks and the plug-in tests.

`bench_job_type.py` is written as another distribution's module would be: it is imported as the
top-level module `bench_job_type`, found through the entry point that `make_dist` describes,
with this folder (and the folder `make_dist` wrote into) on the process's PYTHONPATH.
"""
