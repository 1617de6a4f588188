# The same scripts humans and CI run. `make demo` and `make test` do all set-up themselves.
.PHONY: install install-server services test check demo serve bench clean

install:
	scripts/install.sh

install-server:
	scripts/install.sh server

services:
	scripts/services.sh

test:
	scripts/test.sh

check: install
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

demo: install-server
	.venv/bin/bench-server demo

serve: install-server
	.venv/bin/bench-server migrate && .venv/bin/bench-server serve

bench: install services
	.venv/bin/python benchmarks/ingest_and_query.py

clean:
	rm -rf .venv .demo .pytest_cache .mypy_cache .ruff_cache
