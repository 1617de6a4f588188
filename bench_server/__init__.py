"""bench_server: the results store, REST API, job queue and analysis of the benchmarking service."""

__version__ = "0.1.0"
