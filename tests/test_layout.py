"""The package layout keeps the promises of issue 19: no import circles, small modules and
functions, the formatter owns the formatting, and each vocabulary is spelled in one place.

The layer order itself (cli > bench > training > checkpoint > models | data > core) is the
import-linter contract in pyproject.toml, run by CI as ``lint-imports``; the test below runs it too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cnnbench"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_planted_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles_except_typing_only_ones() -> None:
    grimp = pytest.importorskip("grimp")  # with import-linter, in the dev extra
    graph = grimp.build_graph("cnnbench", exclude_type_checking_imports=True)
    imports = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    assert _cycles(imports) == []


def test_the_layer_contract_holds() -> None:
    pytest.importorskip("importlinter")
    lint = Path(sys.executable).with_name("lint-imports")
    command = [str(lint)] if lint.exists() else ["lint-imports"]
    done = subprocess.run(command, cwd=PACKAGE.parent, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:]


def _python_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_modules_and_functions_stay_small() -> None:
    too_long = []
    for path in _python_files():
        text = path.read_text()
        if text.count("\n") > MAX_MODULE_LINES:
            too_long.append(f"{path.relative_to(PACKAGE)}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}(): {length} lines")
    assert too_long == []


def test_the_formatter_owns_the_formatting() -> None:
    skips = [str(p.relative_to(PACKAGE)) for p in _python_files() if "fmt: " + "skip" in p.read_text()]
    assert skips == []


def test_each_vocabulary_is_spelled_only_in_core_vocab() -> None:
    from cnnbench.core.vocab import VOCABULARIES

    owner = PACKAGE / "core" / "vocab.py"
    repeated = []
    for name, values in VOCABULARIES.items():
        # the first three values as a Python tuple or list would spell them ("max", "avg", "min"): a
        # second definition; an example naming two of them (a grid's pool: [max, avg]) is not one
        spelled = ", ".join(f'"{v}"' for v in values[:3])
        for path in _python_files():
            if path != owner and spelled in path.read_text():
                repeated.append(f"{name}: {path.relative_to(PACKAGE)}")
    assert repeated == []
