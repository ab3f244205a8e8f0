"""The direction of imports: stages compose the library, the library never reaches up into a stage, and reports
only read files and render (they import nothing that trains, evaluates or scores). Beneath that, the library is a
house of floors: a module imports its own floor and those below, never one above, and no modules import each
other round a circle. Imports inside functions count (the package imports lazily), and so do type-only ones."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "cotdistill"
FRONTS = ("cotdistill.stages", "cotdistill.cli", "cotdistill.api", "cotdistill.__main__")
# what a report may use: other report modules, the error types, and the names of the provenance categories
# and the notation of figures (p < 0.001, 1.2e13), which formats and computes nothing
REPORT_MAY_IMPORT = ("cotdistill.report", "cotdistill.errors", "cotdistill.provenance.classify",
                     "cotdistill.figures")
# the floors, ground first, read off the package's imports; a module sits on the floor of its longest prefix here.
# Evaluation, provenance and report import nothing of each other: their order is only the one a house needs.
FLOORS = (
    # the world's generator needs nothing but the record type: everything above may use it
    ("cotdistill.errors", "cotdistill.config", "cotdistill.hashing", "cotdistill.quiet", "cotdistill.compute",
     "cotdistill.distributed", "cotdistill.threads", "cotdistill.data.records", "cotdistill.world",
     "cotdistill.figures", "cotdistill.precision"),
    ("cotdistill.gguf_cache", "cotdistill.sources"),  # the one resolver of names (world:, real:, data specs)
    ("cotdistill.data", "cotdistill.losses", "cotdistill.losses_cross", "cotdistill.losses_reference"),
    ("cotdistill.models", "cotdistill.teacher", "cotdistill.generate"),
    ("cotdistill.evaluation",),
    ("cotdistill.provenance", "cotdistill.select"),
    ("cotdistill.report",),
    ("cotdistill.training", "cotdistill.outputs"),
    FRONTS,
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str) -> set[str]:
    """Every module ``source`` imports, at the top or inside a function (the package imports lazily)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # a relative import, resolved against this module's package
                base = module.split(".")[:-node.level]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.add(name)
            found.update(f"{name}.{alias.name}" for alias in node.names)  # `from cotdistill import stages`
    return found


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def layer_violations(module: str, imports: set[str]) -> list[str]:
    if _within(module, FRONTS) or module == "cotdistill":
        return []
    bad = [f"{module} imports {name} (a stage or front end)" for name in imports if _within(name, FRONTS)]
    if _within(module, ("cotdistill.report",)):
        bad += [f"{module} imports {name} (a report only reads files and renders)" for name in imports
                if _within(name, ("cotdistill",)) and not _within(name, REPORT_MAY_IMPORT)
                and name != "cotdistill"]
    return bad


def floor_of(name: str) -> int | None:
    """The floor of a module, or of a name imported from one (``cotdistill.world.generator.render``): that of its
    longest prefix in :data:`FLOORS`; None outside them."""
    best, floor = "", None
    for level, prefixes in enumerate(FLOORS):
        for prefix in prefixes:
            if _within(name, (prefix,)) and len(prefix) > len(best):
                best, floor = prefix, level
    return floor


def floor_violations(module: str, imports: set[str]) -> list[str]:
    """Imports of ``module`` from a floor above its own. Names with no floor are the package root and what it
    holds (``cotdistill.__version__``): the root is how Python reaches any module."""
    own = floor_of(module)
    above = {name: floor_of(name) for name in imports if floor_of(name) is not None and floor_of(name) > own}
    return [f"{module} (floor {own}) imports {name} (floor {floor})" for name, floor in sorted(above.items())]


def _library() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def import_graph() -> dict[str, set[str]]:
    """Each module of the package → the package's modules it imports (a name imported from a module counts as that
    module; the package root, which only forwards ``train``/``evaluate`` to the API, is left out)."""
    sources = {module_name(path): path.read_text() for path in _library()}
    return {module: _modules_in(imported_modules(source, module), set(sources)) - {module}
            for module, source in sources.items() if module != "cotdistill"}


def _modules_in(names: set[str], modules: set[str]) -> set[str]:
    found = set()
    for name in names:
        while name not in modules and "." in name:  # `cotdistill.evaluation.spec.EvalSpec` → its module
            name = name.rsplit(".", 1)[0]
        if name in modules and name != "cotdistill":
            found.add(name)
    return found


def import_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of imports in ``graph`` (``[a, b, …, a]``), or None: a depth-first walk that meets a module still
    on its path has gone round."""
    done: set[str] = set()

    def walk(module: str, path: list[str]) -> list[str] | None:
        if module in path:
            return path[path.index(module):] + [module]
        if module in done:
            return None
        for imported in sorted(graph.get(module, ())):
            circle = walk(imported, path + [module])
            if circle:
                return circle
        done.add(module)
        return None

    return next((circle for module in sorted(graph) if (circle := walk(module, []))), None)


@pytest.mark.parametrize("path", _library(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_library_never_imports_a_stage_and_reports_compute_nothing(path):
    module = module_name(path)
    assert layer_violations(module, imported_modules(path.read_text(), module)) == []


@pytest.mark.parametrize("module, source", [
    ("cotdistill.training.loop", "def f():\n    from cotdistill.stages.sweep import run_sweep\n"),
    ("cotdistill.provenance.trace", "import cotdistill.cli\n"),
    ("cotdistill.select.run", "from cotdistill import stages\n"),
    ("cotdistill.report.demo", "from cotdistill.provenance.correlate import correlate\n"),
    ("cotdistill.report.plots", "from ..training.loop import train\n"),
])
def test_the_rule_catches_an_import_in_the_wrong_direction(module, source):
    assert layer_violations(module, imported_modules(source, module))


def test_stages_may_import_the_library():
    assert layer_violations("cotdistill.stages.sweep", {"cotdistill.training.loop", "cotdistill.report.plots"}) == []


def test_every_module_has_a_floor():
    assert [module for module in import_graph() if floor_of(module) is None] == []


@pytest.mark.parametrize("path", _library(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_a_floor_above_its_own(path):
    module = module_name(path)
    if module != "cotdistill":
        assert floor_violations(module, imported_modules(path.read_text(), module)) == []


@pytest.mark.parametrize("module, source", [
    ("cotdistill.world", "def f():\n    from cotdistill.evaluation.benchmarks import evaluate\n"),
    ("cotdistill.world.generator", "from cotdistill.training.schedule import lr_factor\n"),
    ("cotdistill.sources", "from cotdistill.models import load_model\n"),
    ("cotdistill.data.encode", "from ..generate import generate\n"),
    ("cotdistill.evaluation.spec", "import cotdistill.training.config\n"),
    ("cotdistill.report.tables", "from cotdistill import training\n"),
])
def test_the_floor_rule_catches_an_import_up_the_house(module, source):
    assert floor_violations(module, imported_modules(source, module))


def test_a_module_may_import_its_own_floor_and_those_below():
    assert floor_violations("cotdistill.training.loop", {"cotdistill.training.config", "cotdistill.report.plots",
                                                         "cotdistill.world.generator", "cotdistill"}) == []


def test_the_package_has_no_import_circle():
    assert import_circle(import_graph()) is None


@pytest.mark.parametrize("module, source", [
    ("cotdistill.evaluation.spec", "def f():\n    from cotdistill.evaluation.benchmarks import evaluate\n"),
    ("cotdistill.gguf_cache", "def convert():\n    from cotdistill.models import load_model\n"),
    ("cotdistill.training.config", "from cotdistill.training.schedule import lr_factor\n"),
    ("cotdistill.world.generator", "def f():\n    from cotdistill.sources import world_data\n"),  # 3 modules round
])
def test_the_circle_check_finds_a_planted_circle(module, source):
    graph = import_graph()
    graph[module] |= _modules_in(imported_modules(source, module), set(graph))
    circle = import_circle(graph)
    assert circle is not None and module in circle and circle[0] == circle[-1]
