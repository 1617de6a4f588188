"""History domain: one metric over commits (series) and a commit beside its baseline."""
