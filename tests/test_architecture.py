"""The layers only look down, and no module imports itself round a cycle: every import of ``rlhf_nb`` (at module level
or inside a function) is walked, and each must point at the same layer or one below it (ARCHITECTURE.md)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "rlhf_nb"
#: bottom to top: a module may import its own layer and the layers before it, never one after it
LAYERS = ("core", "evidence", "lm", "tasks", "sandbox", "rewards", "train", "notebook", "papers", "run")


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    found = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text())):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [module] + [f"{module}.{a.name}" for a in node.names]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name and target.startswith("rlhf_nb."):
                found.add(target)
    return found


def _layer(module: str) -> int:
    return LAYERS.index(module.split(".")[1])


def _graph() -> dict[str, set[str]]:
    known = _modules()
    return {m: _imports(m, p, known) for m, p in known.items() if m != "rlhf_nb"}


def test_every_module_lives_in_a_layer():
    assert {m.split(".")[1] for m in _graph()} == set(LAYERS)
    assert not [p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py"], "modules outside the layers"


def test_no_import_reaches_up_a_layer():
    upward = sorted(f"{m} ({m.split('.')[1]}) -> {t} ({t.split('.')[1]})"
                    for m, targets in _graph().items() for t in targets if _layer(t) > _layer(m))
    assert not upward, "\n".join(upward)


def test_no_import_cycles():
    graph = _graph()
    index, low, stack, on_stack, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, cycles


def test_the_package_facade_imports_only_plumbing_at_import_time():
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    top = [n for n in tree.body if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("rlhf_nb")]
    assert top and all(n.module.startswith("rlhf_nb.core") for n in top)


def test_the_walker_sees_an_upward_import(tmp_path):
    """The check can fail: an evidence module importing the runner is reported."""
    known = {"rlhf_nb.evidence.x": tmp_path / "x.py", "rlhf_nb.run.runner": tmp_path / "runner.py"}
    (tmp_path / "x.py").write_text("def f():\n    from rlhf_nb.run.runner import run\n")
    found = _imports("rlhf_nb.evidence.x", tmp_path / "x.py", known)
    assert found == {"rlhf_nb.run.runner"} and _layer("rlhf_nb.run.runner") > _layer("rlhf_nb.evidence.x")


def test_what_a_report_recomputes_never_imports_the_code_that_runs_models():
    """A paper's readers, claims and figures recompute REPORT.md and the figures from saved results: none of them
    reaches, through any chain of imports, a module of a paper that runs its experiment (steps and its parts)."""
    graph = _graph()
    running = {m for m in graph if m.startswith("rlhf_nb.papers.") and m.rsplit(".", 1)[-1] in RUNNING}
    found = []
    for module in graph:
        if module.startswith("rlhf_nb.papers.") and module.rsplit(".", 1)[-1] in ("readers", "claims", "figures"):
            seen, todo = set(), [module]
            while todo:
                for target in graph.get(todo.pop(), ()):
                    if target not in seen:
                        seen.add(target)
                        todo.append(target)
            found += [f"{module} -> {m}" for m in sorted(seen & running)]
    assert running and not found, "\n".join(found)


#: a paper's modules that run its experiment (load models, sample, train)
RUNNING = ("steps", "hacking", "selection")
