"""Where SQL may be written: in repositories (and `kit/`), never in a router, a page, `app.py` or a
service. A service may name the Session type and catch SQLAlchemy's exceptions, nothing more."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HTTP_LAYER = sorted(
    [*REPO.glob("bench_server/*/router.py"), REPO / "bench_server/app.py", *REPO.glob("web/**/*.py")]
)
SERVICES = sorted(REPO.glob("bench_server/*/service.py"))
# Session methods that run or stage SQL.
SQL_METHODS = {"execute", "scalars", "scalar", "get", "get_one", "query", "add", "add_all", "delete"}
SQL_METHODS |= {"flush", "refresh", "connection", "merge", "begin_nested"}


def sql_found(path: Path, allowed_imports: set[str]) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "sqlalchemy":
            names = {f"{node.module}.{alias.name}" for alias in node.names}
            found += [f"line {node.lineno}: imports {n}" for n in sorted(names - allowed_imports)]
        elif isinstance(node, ast.Import):
            found += [
                f"line {node.lineno}: imports {a.name}" for a in node.names if a.name.startswith("sqlalchemy")
            ]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in SQL_METHODS
            and isinstance(node.func.value, ast.Name)
            and "session" in node.func.value.id
        ):
            found.append(f"line {node.lineno}: {node.func.value.id}.{node.func.attr}()")
    return found


@pytest.mark.parametrize("path", HTTP_LAYER, ids=lambda p: str(p.relative_to(REPO)))
def test_no_sql_in_routers_pages_or_the_app(path: Path) -> None:
    assert sql_found(path, {"sqlalchemy.orm.Session"}) == []


@pytest.mark.parametrize("path", SERVICES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_sql_in_services(path: Path) -> None:
    assert sql_found(path, {"sqlalchemy.orm.Session", "sqlalchemy.exc.IntegrityError"}) == []


# imports writes nothing of its own: a parsed file is stored through results.service.
NO_REPOSITORY = {"imports"}


def test_every_domain_has_a_router_a_service_and_a_repository() -> None:
    domains = {p.parent.name for p in REPO.glob("bench_server/*/service.py")}
    expected = {
        "results",
        "history",
        "catalog",
        "imports",
        "runs",
        "jobs",
        "runners",
        "github",
        "auth",
        "ops",
        "analysis",
    }
    assert expected <= domains
    for name in domains:
        package = REPO / "bench_server" / name
        assert (package / "repository.py").is_file() or name in NO_REPOSITORY, name
        # auth's HTTP side is its dependencies (it has no endpoints)
        assert (package / ("deps.py" if name == "auth" else "router.py")).is_file(), name
