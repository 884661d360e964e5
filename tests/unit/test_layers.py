"""The package's folders are its layers, and imports flow one way between them.

- `core/` imports only `core/` (and the package's constants in `__init__`);
- `store/` imports `core/`, `store/` and the config;
- `commands/steps/` imports `core/`, `store/`, the config and other steps;
- a command in `commands/` imports `core/`, `store/`, the config and `steps/`, never another command;
- `config.py` and `validate.py` import nothing above `core/options.py`.

Imports made inside functions count too: a lazy import that only hides a cycle is still an import.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "lib" / "partner_hunt"
TOP = {"__init__", "cli", "config", "validate", "terminal", "notebook"}


def module_name(path: Path) -> str:
    """`core.hunt`, `commands.steps.window`, `cli`: the dotted name under the package."""
    return ".".join(path.relative_to(PACKAGE).with_suffix("").parts)


def imported_modules(path: Path) -> set[str]:
    """The partner_hunt modules `path` imports (dotted, under the package), wherever the statement is."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "partner_hunt":
            base = node.module.split(".")[1:]
            for alias in node.names:
                candidate = [*base, alias.name]
                is_module = (PACKAGE.joinpath(*candidate).with_suffix(".py")).exists() or PACKAGE.joinpath(*candidate).is_dir()
                target = candidate if is_module else base
                found.add(".".join(target) or "__init__")
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".", 1)[1] for a in node.names if a.name.startswith("partner_hunt.")}
    return {name[: -len(".__init__")] if name.endswith(".__init__") else name for name in found}


def layer(name: str) -> str:
    """The layer a module belongs to: core, store, steps, command, or its own name at the top."""
    if name.startswith("commands.steps"):
        return "steps"
    if name.startswith("commands"):
        return "command"
    return name.split(".")[0]


ALLOWED = {
    "core": {"core", "__init__"},
    "store": {"core", "store", "config", "validate", "__init__"},
    "steps": {"core", "store", "steps", "config", "validate", "__init__"},
    "command": {"core", "store", "steps", "config", "validate", "__init__"},
    "config": {"validate", "core.options"},
    "validate": set(),
}


def allowed(source: str, target: str) -> bool:
    here, there = layer(source), layer(target)
    if here == "command" and there == "command":
        # A command never imports another command; only the package's own `__init__` is shared.
        return target == "commands"
    rule = ALLOWED.get(here)
    if rule is None:
        return True  # cli, terminal, notebook: the top may use anything below it
    return there in rule or target in rule


def violations(modules: dict[str, set[str]]) -> list[str]:
    """Every import in `modules` ({module: imported modules}) that the layer rule forbids."""
    return sorted(
        f"{source} imports {target}"
        for source, targets in modules.items()
        for target in targets - {source}
        if not allowed(source, target)
    )


def package_imports() -> dict[str, set[str]]:
    return {module_name(p): imported_modules(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_every_module_sits_in_a_layer_folder_or_at_the_top():
    loose = {name for name in package_imports() if "." not in name} - TOP
    assert loose == set(), "put new modules in core/, store/ or commands/"


def test_imports_follow_the_layers():
    assert violations(package_imports()) == []


def test_the_rule_refuses_what_it_should():
    assert violations(
        {
            "core.hunt": {"store.io", "config", "core.domains"},
            "store.io": {"commands.steps.window", "core.hunt"},
            "commands.run": {"commands.backfill", "commands.steps.window"},
            "commands.steps.days": {"commands.run"},
            "config": {"core.hunt", "core.options"},
        }
    ) == [
        "commands.run imports commands.backfill",
        "commands.steps.days imports commands.run",
        "config imports core.hunt",
        "core.hunt imports config",
        "core.hunt imports store.io",
        "store.io imports commands.steps.window",
    ]


def test_the_check_sees_lazy_and_aliased_imports(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from partner_hunt import __version__\n"
        "from partner_hunt.store import io\n"
        "def f():\n"
        "    from partner_hunt.commands.steps.window import plan_window\n"
        "    import partner_hunt.cli as c\n"
    )
    assert imported_modules(sample) == {"__init__", "store.io", "commands.steps.window", "cli"}


def test_modules_stay_readable_in_one_sitting():
    """No module over 400 lines; a command's own module stays short, its steps do the work."""
    lengths = {module_name(p): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert {name: n for name, n in lengths.items() if n > 400} == {}
    assert {name: n for name, n in lengths.items() if layer(name) == "command" and n > 300} == {}


def test_no_core_function_takes_the_config():
    """The core takes plain values or `core/options.py`'s settings, never the job's Config."""
    taking = []
    for path in sorted((PACKAGE / "core").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for arg in [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]:
                    annotation = ast.unparse(arg.annotation) if arg.annotation is not None else ""
                    if arg.arg == "config" or "Config" in annotation or "Settings" in annotation:
                        taking.append(f"{path.stem}.{node.name}({arg.arg})")
    assert taking == []
