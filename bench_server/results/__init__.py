"""Results domain: validated batch ingest (idempotent, all-or-nothing) and the results listing."""
