"""Runs: triggers (a commit to benchmark, from the API, a webhook or the CLI) and their fan-out
into jobs."""
