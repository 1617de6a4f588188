"""Catalog domain: projects, commits, hardware classes, machines, benchmarks and metrics."""
