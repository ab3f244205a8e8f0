"""The direction of imports: stages compose the library, the library never reaches up into a stage, and reports
only read files and render (they import nothing that trains, evaluates or scores)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "cotdistill"
FRONTS = ("cotdistill.stages", "cotdistill.cli", "cotdistill.api", "cotdistill.__main__")
# what a report may use: other report modules, the error types, and the names of the provenance categories
REPORT_MAY_IMPORT = ("cotdistill.report", "cotdistill.errors", "cotdistill.provenance.classify")


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


def _library() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


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
