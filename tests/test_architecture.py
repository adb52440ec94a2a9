"""Import contracts: the layout's rules, checked on every import, at module or function level.

- the settings (``config/``, one ``BaseSettings``) are the lowest layer: they import no package
  of ours, and every package may read them;
- litellm is imported by one module, ``judge/model_client.py`` (the door to model providers);
- the engine (``judge/``) imports no storage, service, statistics or application package and no
  SQL or web library;
- ``calibration/`` is pure statistics: no storage, service, application or SQL;
- ``ledger/`` imports neither the HTTP service nor the application layer;
- the application services (``app/`` outside ``app/cli``: the verification pipeline's wiring,
  the job worker, the view models) import neither the HTTP service nor the CLI, and ``api/`` may
  use those services but never the CLI (``app/cli`` is the top: it may start the service, not
  the other way round);
- the web pages (``api/web/``) hold no SQL: they read and write the ledger through its functions
  (``ledger.review_queue``, ``ledger.tenants``, ``Ledger``), never its tables or a SQL library
  (the ``Engine`` type aside);
- no package has an import cycle among its modules.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("config", "judge", "api", "ledger", "calibration", "app")
MODEL_CLIENT = "judge/model_client.py"
SQL_AND_WEB = ("sqlalchemy", "sqlmodel", "alembic", "psycopg", "fastapi", "starlette", "uvicorn")

FORBIDDEN: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # package: (forbidden import prefixes, sub-paths exempt from the rule)
    "config": (("judge", "api", "ledger", "calibration", "app", *SQL_AND_WEB), ()),
    "judge": (("ledger", "api", "calibration", "app", *SQL_AND_WEB), ()),
    "calibration": (("ledger", "api", "app", *SQL_AND_WEB), ()),
    "ledger": (("api", "app"), ()),
    "api": (("app.cli",), ()),
    "app": (("api", "app.cli"), ("app/cli/",)),
    "api/web": (
        ("sqlmodel", "alembic", "psycopg", "ledger.tables", "ledger.service_tables", "sqlalchemy"),
        (),
    ),
}
#: Imports a rule's prefix would catch that are allowed anyway (a type, not a query).
ALLOWED = ("sqlalchemy.engine.Engine", "sqlalchemy.engine")


def _python_files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _package_of(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])


def _imports(path: Path, package: str | None = None) -> Iterator[tuple[int, str]]:
    """Every module ``path`` imports (relative imports resolved against ``package``, default the
    file's own), with its line; also the string given to ``__import__`` or
    ``importlib.import_module``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = _package_of(path) if package is None else package
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            yield node.lineno, module
            for alias in node.names:  # "from judge import model_client" imports a module too
                yield node.lineno, f"{module}.{alias.name}"
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                (isinstance(node.func, ast.Name) and node.func.id == "__import__")
                or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
            )
        ):
            yield node.lineno, node.args[0].value


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def test_the_contract_checker_sees_function_level_and_string_imports(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "def f():\n    import litellm\n    from ledger import db\n    from ..api import app\n"
        "    __import__('fastapi')\n    return db, app\n",
        encoding="utf-8",
    )
    found = {m for _, m in _imports(probe, "judge.sub")}
    assert {"litellm", "ledger", "ledger.db", "judge.api", "fastapi"} <= found


def test_litellm_is_imported_by_the_model_client_only() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line}"
        for package in PACKAGES
        for path in _python_files(package)
        for line, module in _imports(path)
        if _under(module, "litellm") and path.relative_to(ROOT).as_posix() != MODEL_CLIENT
    ]
    assert offenders == [], f"import litellm only in {MODEL_CLIENT}; found it in {offenders}"


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_packages_import_only_what_their_layer_may(package: str) -> None:
    forbidden, exempt = FORBIDDEN[package]
    offenders = []
    for path in _python_files(package):
        where = path.relative_to(ROOT).as_posix()
        if any(where.startswith(e) for e in exempt):
            continue
        for line, module in _imports(path):
            bad = [p for p in forbidden if _under(module, p) and module not in ALLOWED]
            if bad:
                offenders.append(f"{where}:{line} imports {module}")
    assert offenders == [], f"{package}/ must not import {forbidden}: " + "; ".join(offenders)


def _module_graph(package: str) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports (function-level imports too)."""
    graph: dict[str, set[str]] = {}
    for path in _python_files(package):
        parts = path.relative_to(ROOT).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        targets = set()
        for _, imported in _imports(path):
            pieces = imported.split(".")
            if pieces[0] != package:
                continue
            for end in range(len(pieces), 0, -1):  # the longest prefix that is a module file
                candidate = ROOT.joinpath(*pieces[:end])
                if candidate.with_suffix(".py").is_file():
                    targets.add(".".join(pieces[:end]))
                    break
        graph[module] = targets - {module}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycles_inside_a_package(package: str) -> None:
    """Function-level imports count: a cycle hidden inside functions is still a cycle."""
    assert _cycles(_module_graph(package)) == []
