"""`bench-runner import`: the command line over the shared parsers in `bench_formats`."""
