"""bench-runner: the agent that runs benchmarks on a machine and posts results over HTTP."""

__version__ = "0.1.0"
