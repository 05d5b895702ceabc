"""Every committed notebook follows conventions 1-4: thin, one typed parameters cell, no outputs."""

from __future__ import annotations

import ast
import importlib
import json
import types
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))
FORBIDDEN_CALLS = {"open", "exec", "eval", "compile", "__import__"}
FORBIDDEN_MODULES = {"re", "os", "pathlib", "json", "io", "subprocess"}


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 3, "the workbench ships its notebooks"


def _code(cell) -> str:
    src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
    return "\n".join(line for line in src.splitlines() if not line.lstrip().startswith(("%", "!")))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_structure(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    cells = nb["cells"]
    assert nb["metadata"].get("kernelspec", {}).get("name") == "python3"
    # 1. markdown header first
    assert cells[0]["cell_type"] == "markdown" and "".join(cells[0]["source"]).lstrip().startswith(
        "#"
    )
    code_cells = [c for c in cells if c["cell_type"] == "code"]
    # 4. no committed outputs
    for c in code_cells:
        assert not c.get("outputs"), f"{path.name}: committed outputs"
        assert c.get("execution_count") is None, f"{path.name}: execution counts committed"
    # 2. exactly one parameters cell, self-documenting, with smoke
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: {len(tagged)} parameters cells"
    names = []
    for line in _code(tagged[0]).splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        assert "  # " in line, f"{path.name}: parameter without help comment: {line!r}"
        stmt = ast.parse(line.split("  # ")[0]).body[0]
        assert isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name), line
        ast.literal_eval(stmt.value)  # literal defaults only
        names.append(stmt.target.id)
    assert "smoke" in names, f"{path.name}: no smoke parameter"
    import papermill  # papermill must see every parameter, or --help-notebook hides it

    inferred = papermill.inspect_notebook(str(path))
    assert sorted(inferred) == sorted(names), f"{path.name}: papermill parses {sorted(inferred)}"
    assert all(p["help"] for p in inferred.values()), f"{path.name}: a parameter without help"
    # 1. one imports cell, from axon_lab only; the rest has no logic
    import_cells = 0
    for c in code_cells:
        if c is tagged[0]:
            continue
        tree = ast.parse(_code(c))
        imports = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
        if imports:
            import_cells += 1
            assert len(imports) == len(tree.body), f"{path.name}: imports mixed with code"
            for n in imports:
                mods = [n.module] if isinstance(n, ast.ImportFrom) else [a.name for a in n.names]
                assert all(m and m.split(".")[0] == "axon_lab" for m in mods), (
                    f"{path.name}: imports {mods}"
                )
                # one style: modules, not names (calls read ``vector.sweep(...)``)
                assert isinstance(n, ast.ImportFrom), (
                    f"{path.name}: use 'from axon_lab import module'"
                )
                for a in n.names:
                    obj = _imported(n.module, a.name)
                    assert isinstance(obj, types.ModuleType), (
                        f"{path.name}: imports {a.name} (not a module)"
                    )
        for node in ast.walk(tree):
            assert not isinstance(node, ast.AnnAssign), (
                f"{path.name}: annotations belong to the parameters cell"
            )
            assert not isinstance(
                node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda
            ), f"{path.name}: defines logic"
            assert not isinstance(node, ast.For | ast.While), (
                f"{path.name}: loops belong in axon_lab"
            )
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in FORBIDDEN_CALLS, f"{path.name}: calls {node.func.id}()"
            if isinstance(node, ast.Name):
                assert node.id not in FORBIDDEN_MODULES, f"{path.name}: uses {node.id}"
    assert import_cells == 1, f"{path.name}: {import_cells} import cells"
    # 3. results are recorded as a sidecar at the end, with every parameter typed once only
    assert "record(" in _code(code_cells[-1]), f"{path.name}: last cell must record() the results"
    assert _records_parameter_values(code_cells), (
        f"{path.name}: record(parameters=...) must come from report.parameter_values()"
    )


def _imported(module: str, name: str):
    try:
        return importlib.import_module(f"{module}.{name}")
    except ImportError:
        return getattr(importlib.import_module(module), name)


def _is_parameter_values(node: ast.AST) -> bool:
    """``report.parameter_values()``, or a call that passes ``**report.parameter_values()``."""
    if not isinstance(node, ast.Call):
        return False
    if isinstance(node.func, ast.Attribute) and node.func.attr == "parameter_values":
        return True
    return any(k.arg is None and _is_parameter_values(k.value) for k in node.keywords)


def _records_parameter_values(code_cells) -> bool:
    assigned = {}
    calls = []
    for c in code_cells:
        tree = ast.parse(_code(c))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
            ):
                assigned[node.targets[0].id] = node.value
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "attr", getattr(node.func, "id", "")) == "record"
            ):
                calls.append(node)
    for call in calls:
        value = next((k.value for k in call.keywords if k.arg == "parameters"), None)
        if isinstance(value, ast.Name):
            value = assigned.get(value.id)
        if value is None or not _is_parameter_values(value):
            return False
    return bool(calls)
