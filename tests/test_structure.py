"""The shape of src/: its layers, read from the imports (commands -> stages and the server -> config -> engines ->
core), and the size of its modules and functions.

A module may import its own package and the packages below it, never one above or beside it (two packages of one
rank do not know each other). Imports inside functions count the same: a lazy import is no way around the rule.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
COMMANDS = ["train", "hydra_plugins", "lorakit.cli", "lorakit.compare", "lorakit.chat", "lorakit.serve", "lorakit.merge",
            "lorakit.leaderboard", "lorakit.pairs", "lorakit.migrate"]
RANKS = [  # top to bottom
    COMMANDS,                                               # python -m train, python -m lorakit.<command>
    ["lorakit.stages", "lorakit.server"],                   # the pipeline's stages; the HTTP API
    ["lorakit.config"],                                     # compose and check a run's configuration
    ["lorakit.methods"],                                    # each training method as one unit, and their registry
    ["lorakit.sweeps"],                                     # engines, from here down
    ["lorakit.evaluation"],
    ["lorakit.data"],
    ["lorakit.training", "lorakit.inference"],
    ["lorakit.openai", "lorakit.models"],                   # OpenAI's API (its client, formats, accounts); models
    ["lorakit.core"],                                       # errors, run folder, messages, paths
]
RANK = {unit: i for i, units in enumerate(RANKS) for unit in units}


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")


def unit_of(module: str) -> str | None:
    """The package (or command) a module belongs to: the longest unit its name starts with."""
    found = [u for u in RANK if module == u or module.startswith(u + ".")]
    return max(found, key=len) if found else None


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every lorakit import in the file, at the top or inside a function."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:  # `from lorakit import merge` imports the module lorakit.merge
                found.append((node.lineno, f"{node.module}.{alias.name}" if node.module == "lorakit" else node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return [(line, m) for line, m in found if m.split(".")[0] in ("lorakit", "train", "hydra_plugins")]


def the_imports() -> dict[str, list[tuple[int, str]]]:
    return {module_name(p): imports_of(p) for p in SRC.rglob("*.py")}


def violations(imports: dict[str, list[tuple[int, str]]]) -> list[str]:
    """Every import that points up or sideways, and every module that belongs to no unit."""
    out = []
    for module, found in sorted(imports.items()):
        unit = unit_of(module)
        if unit is None:
            if module != "lorakit":
                out.append(f"{module} belongs to no layer: add its package to RANKS")
            continue
        for line, target in found:
            other = unit_of(target)
            if other is None or other == unit:
                continue
            if RANK[other] <= RANK[unit]:
                where = "above" if RANK[other] < RANK[unit] else "beside"
                out.append(f"{module}:{line} imports {target}, which is {where} it ({other} over {unit})")
    return out


def cycles(imports: dict[str, list[tuple[int, str]]]) -> list[list[str]]:
    """Circles of modules importing each other (any import, lazy ones too)."""
    graph = {m: {t for _, t in found if t in imports} for m, found in imports.items()}
    out, state = [], {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = "open"
        for t in sorted(graph[m]):
            if state.get(t) == "open":
                out.append(path[path.index(t):] + [t] if t in path else [m, t])
            elif t not in state:
                visit(t, path + [t])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    return out


def test_every_import_points_down_the_layers():
    assert violations(the_imports()) == []


def test_no_modules_import_each_other_in_a_circle():
    assert cycles(the_imports()) == []


def test_an_upward_or_sideways_import_is_found():
    imports = the_imports()
    imports["lorakit.core.runs"] = imports["lorakit.core.runs"] + [(1, "lorakit.stages.pipeline")]
    imports["lorakit.server.app"] = imports["lorakit.server.app"] + [(2, "lorakit.stages.prepare")]
    imports["lorakit.new_helper"] = []
    assert violations(imports) == [
        "lorakit.core.runs:1 imports lorakit.stages.pipeline, which is above it (lorakit.stages over lorakit.core)",
        "lorakit.new_helper belongs to no layer: add its package to RANKS",
        "lorakit.server.app:2 imports lorakit.stages.prepare, which is beside it (lorakit.stages over lorakit.server)",
    ]
    imports["lorakit.data.splits"] = imports["lorakit.data.splits"] + [(3, "lorakit.data.reading")]
    imports["lorakit.data.reading"] = imports["lorakit.data.reading"] + [(4, "lorakit.data.splits")]
    assert ["lorakit.data.reading", "lorakit.data.splits", "lorakit.data.reading"] in cycles(imports)


def test_no_module_over_400_lines_and_no_function_over_60():
    too_long = []
    for path in SRC.rglob("*.py"):
        text = path.read_text()
        if len(text.splitlines()) > 400:
            too_long.append(f"{module_name(path)}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno >= 60:
                too_long.append(f"{module_name(path)}.{node.name}: {node.end_lineno - node.lineno + 1} lines")
    assert too_long == []
