"""Run Alembic programmatically: the same migrations for the CLI, the demo and the tests.

The Alembic scripts are package data of `bench_server`: in a checkout `bench_server/migrations`
is a link to the top-level `migrations/` folder, and a built wheel carries them as a plain folder.
So they are found with importlib.resources alike in a checkout, an editable install and a
`pip install .`. (`alembic` run from the repository root reads `alembic.ini`, which points at the
same folder.)
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from alembic import command
from alembic.config import Config

from bench_server.kit.db import normalise_url


def script_location() -> Path:
    """The folder with `env.py` and `versions/`."""
    location = files("bench_server") / "migrations"
    # Alembic reads the scripts from the file system, which a zipped install does not offer.
    if not isinstance(location, Path) or not (location / "env.py").is_file():
        raise RuntimeError(f"the Alembic scripts are not installed as files beside bench_server: {location}")
    return location


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location()))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)


def check(url: str) -> None:
    """Raises if the models and the migrations disagree."""
    command.check(alembic_config(url))
