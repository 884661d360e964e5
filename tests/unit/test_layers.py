"""The package's imports flow one way: every module imports only modules of lower layers.

A cycle, an upward import, or a module missing from the layer table fails here, including
imports made inside functions (a lazy import that only hides a cycle still counts).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "lib" / "partner_hunt"

# Lowest first. A module may import any module of a lower layer, none of its own or a higher one.
LAYERS = [
    {"__init__", "tables", "validate", "domains", "privacy", "faults", "predicates"},
    {"config"},
    {"schema", "hunt", "locations", "session"},
    {"io", "partials", "evidence", "alerts", "diff", "demo", "owndomains", "partners"},
    {"changes", "checks", "files"},
    {"runlog"},
    {"quality", "outputs"},
    {"owned", "partner_table", "export"},
    {"pipeline", "backfill"},
    {"incremental", "compare"},
    {"notebook", "terminal"},
    {"cli"},
]
LAYER_OF = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def imported_modules(path: Path) -> set[str]:
    """The partner_hunt modules `path` imports, wherever the import statement is."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "partner_hunt":
            parts = node.module.split(".")
            if len(parts) > 1:
                found.add(parts[1])
            else:
                # `from partner_hunt import x`: x is a module, or a name of __init__.
                found |= {a.name if (PACKAGE / f"{a.name}.py").exists() else "__init__" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("partner_hunt.")}
    return found


def test_every_module_has_a_layer():
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    assert modules - set(LAYER_OF) == set(), "add new modules to LAYERS"


def test_imports_only_go_down():
    upward = []
    for path in sorted(PACKAGE.glob("*.py")):
        here = LAYER_OF[path.stem]
        for target in sorted(imported_modules(path) - {path.stem}):
            if LAYER_OF[target] >= here:
                upward.append(f"{path.stem} (layer {here}) imports {target} (layer {LAYER_OF[target]})")
    assert upward == []


def test_the_check_sees_lazy_and_aliased_imports(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from partner_hunt import io, __version__\n"
        "def f():\n"
        "    from partner_hunt.pipeline import run\n"
        "    import partner_hunt.cli as c\n"
    )
    assert imported_modules(sample) == {"io", "__init__", "pipeline", "cli"}


def test_modules_stay_readable_in_one_sitting():
    """Issue 14's limits: the run path's orchestration under 250 lines, no module over 400."""
    lengths = {p.stem: len(p.read_text().splitlines()) for p in PACKAGE.glob("*.py")}
    assert lengths["pipeline"] < 250
    assert {name: n for name, n in lengths.items() if n > 400} == {}
