"""The package's import structure (docs/design.md): no module imports another that (directly or not) imports it back
at import time, and the arrows that must never exist do not — models, losses and data know nothing of training; the
engine takes an explicit configuration and knows nothing above it (recipes, the paper, who runs, measures or tabulates
it), its command-line entry aside; the paper as data imports nothing that runs."""
from __future__ import annotations

import ast
from pathlib import Path

import slnl

PKG = Path(slnl.__file__).resolve().parent


def _name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _is_type_checking(node: ast.stmt) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _module_level(body: list[ast.stmt]):
    """The import statements that run when the module is imported: not inside functions, not under TYPE_CHECKING."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or _is_type_checking(node):
            continue
        else:
            for field in ("body", "orelse", "finalbody", "handlers"):
                yield from _module_level([n for n in getattr(node, field, []) if isinstance(n, ast.AST)])


def imported_modules(name: str, module_level_only: bool) -> set[str]:
    """The slnl modules that module ``name`` imports: ``from X import y`` counts X.y when that is a module, else X."""
    path = MODULES[name]
    tree = ast.parse(path.read_text())
    nodes = _module_level(tree.body) if module_level_only else (
        n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
            continue
        base = package.rsplit(".", node.level - 1)[0] if node.level else ""
        mod = ".".join(p for p in (base, node.module) if p)
        subs = {f"{mod}.{a.name}" for a in node.names}
        # `from pkg import submodule` needs the submodule; `from pkg import name` needs pkg's __init__ to define name
        out |= subs if subs <= MODULES.keys() else {mod} | (subs & MODULES.keys())
    return {m for m in out if m in MODULES and m != name}


def test_no_import_cycle_between_package_modules():
    graph = {m: imported_modules(m, module_level_only=True) for m in MODULES}
    assert graph["slnl.engine"] and graph["slnl.report"], "the walk found no imports: it is blind"
    state: dict[str, int] = {}  # 1: on the current path, 2: finished

    def visit(m: str, path: list[str]) -> None:
        assert state.get(m) != 1, f"import cycle: {' -> '.join(path[path.index(m):] + [m])}"
        if state.get(m) == 2:
            return
        state[m] = 1
        for n in sorted(graph[m]):
            visit(n, path + [m])
        state[m] = 2

    for m in sorted(graph):
        visit(m, [])


# Who may not import whom, anywhere in the module (functions included): (importer prefix, forbidden prefixes).
FORBIDDEN: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("slnl.models", ("slnl.engine", "slnl.bench", "slnl.experiments", "slnl.recipes", "slnl.study", "slnl.report",
                     "slnl.sweep")),
    ("slnl.data", ("slnl.engine", "slnl.bench", "slnl.models", "slnl.experiments", "slnl.recipes", "slnl.study",
                   "slnl.report", "slnl.sweep")),
    ("slnl.losses", ("slnl.engine", "slnl.bench", "slnl.experiments", "slnl.recipes", "slnl.study", "slnl.report",
                     "slnl.sweep")),
    ("slnl.experiments", ("slnl.engine", "slnl.recipes", "slnl.study", "slnl.report", "slnl.bench", "slnl.sweep",
                          "slnl.models")),
    ("slnl.recipes", ("slnl.study", "slnl.report", "slnl.bench", "slnl.sweep")),
    ("slnl.bench", ("slnl.report", "slnl.sweep", "slnl.study", "slnl.experiments")),
    ("slnl.study", ("slnl.report", "slnl.sweep", "slnl.bench")),
    ("slnl.report", ("slnl.sweep", "slnl.bench", "slnl.study")),
)
# The engine takes an explicit TrainConfig and imports nothing above it; its command-line entry alone builds one from
# a recipe and a paper row.
ENGINE_ABOVE = ("slnl.experiments", "slnl.recipes", "slnl.study", "slnl.sweep", "slnl.report", "slnl.bench")


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def test_import_arrows_that_must_never_exist():
    for importer, bad in FORBIDDEN:
        for m in (m for m in MODULES if _under(m, importer)):
            hits = sorted(n for n in imported_modules(m, module_level_only=False) if any(_under(n, b) for b in bad))
            assert not hits, f"{m} imports {hits}"
    for m in (m for m in MODULES if _under(m, "slnl.engine") and m != "slnl.engine.cli"):
        hits = sorted(n for n in imported_modules(m, module_level_only=False) if any(_under(n, b) for b in ENGINE_ABOVE))
        assert not hits, f"{m} imports {hits}"
    assert "slnl.recipes" in imported_modules("slnl.engine.cli", module_level_only=True)  # the walk sees the entry
    # The step is the bottom of the engine: the benchmark imports it without the loop.
    step = imported_modules("slnl.engine.step", module_level_only=False)
    assert not {"slnl.engine.trainer", "slnl.engine.fit", "slnl.engine.evaluation"} & step


def test_the_walk_sees_relative_and_nested_imports():
    # slnl.data modules import each other relatively; slnl.utils imports slnl (the package) for __version__
    assert "slnl.data.store" in imported_modules("slnl.data.pipeline", module_level_only=True)
    assert "slnl" in imported_modules("slnl.utils", module_level_only=True)


def test_no_module_needs_a_table_of_contents():
    """One concern per module: no file of the package is over 500 lines (a file that needs a table of contents is
    two files)."""
    root = Path(__file__).resolve().parents[1] / "slnl"
    long = {str(p.relative_to(root)): n for p in root.rglob("*.py") if (n := len(p.read_text().splitlines())) > 500}
    assert not long, f"over 500 lines: {long}"
