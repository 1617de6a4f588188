"""bench-ci: trigger benchmark runs on a bench-server, wait for them, and report the results in
a GitHub Actions job (step summary, step outputs, exit code)."""

__version__ = "0.1.0"
