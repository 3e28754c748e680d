"""The house plan, enforced: no import cycles, no private names across packages, layers import downwards.

Reads the source with :mod:`ast` (nothing is imported), so a violation anywhere in the project fails
here even if no test exercises that module. The layers are those of ``docs/architecture.md``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("acquisition", "fusion", "synth", "data_cards")

#: acquisition's layers, lowest first; a module may import its own layer's package and lower ones.
ACQUISITION_LAYERS = {"utils": 0, "sync": 1, "session": 2, "lsl": 3, "devices": 4, "io": 4,
                      "annotate": 5, "viz": 5, "live": 6, "cli": 7}
#: top-level packages, lowest first: acquisition is the base, data_cards reads sessions and corpora.
PACKAGE_LEVELS = {"acquisition": 0, "fusion": 1, "synth": 1, "data_cards": 2}


def project_modules(root: Path) -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _imports(module: str, path: Path) -> list[tuple[str, int]]:
    """Every module-or-attribute path imported anywhere in the file (also inside functions), with its line."""
    base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                prefix = ".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            found += [(f"{prefix}.{alias.name}", node.lineno) for alias in node.names]
    return found


def import_graph(root: Path) -> tuple[dict[str, set[str]], list[str]]:
    """Module -> project modules it imports; and every underscored name imported across top-level packages."""
    modules = project_modules(root)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    private = []
    for module, path in modules.items():
        for full, line in _imports(module, path):
            target = full
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if not target or target == module:
                continue
            # A package importing its own submodules (re-exports) is not a dependency between designs.
            if not (target.startswith(module + ".") or module.startswith(target + ".")):
                graph[module].add(target)
            if full.split(".")[0] != module.split(".")[0] and any(
                    part.startswith("_") and not part.startswith("__") for part in full.split(".")):
                private.append(f"{path.relative_to(root)}:{line} imports {full}")
    return graph, private


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
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
                    cycles.append(sorted(component))
    return cycles


def _level(module: str) -> tuple[int, int | None]:
    parts = module.split(".")
    layer = ACQUISITION_LAYERS.get(parts[1]) if parts[0] == "acquisition" and len(parts) > 1 else None
    return PACKAGE_LEVELS[parts[0]], layer


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """Imports that go up: to a higher top-level package, or to a higher acquisition layer."""
    bad = []
    for module, targets in graph.items():
        package, layer = _level(module)
        for target in targets:
            target_package, target_layer = _level(target)
            if target_package > package or (
                    package == target_package == 0 and target_layer is not None
                    and (layer is None or target_layer > layer)):
                bad.append(f"{module} imports {target}")
    return sorted(bad)


def test_no_import_cycles():
    graph, _ = import_graph(REPO_ROOT)
    cycles = find_cycles(graph)
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_no_private_names_across_packages():
    _, private = import_graph(REPO_ROOT)
    assert not private, "underscored names imported from another top-level package:\n" + "\n".join(private)


def test_layers_import_only_downwards():
    graph, _ = import_graph(REPO_ROOT)
    assert not layer_violations(graph), "\n".join(layer_violations(graph))


def test_acquisition_has_only_layers_at_top():
    flat = sorted(p.name for p in (REPO_ROOT / "acquisition").glob("*.py") if p.name != "__init__.py")
    layers = sorted(p.name for p in (REPO_ROOT / "acquisition").iterdir() if (p / "__init__.py").is_file())
    assert len(flat) <= 10, flat
    assert set(layers) == set(ACQUISITION_LAYERS), "docs/architecture.md and this test list the layers"


# -- the checks themselves can fail: a small project with each defect ---------------------------------------

def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for package in PACKAGES:
        (root / package).mkdir(exist_ok=True)
        (root / package / "__init__.py").touch()
    return root


def test_checks_find_a_cycle_a_private_import_and_an_upward_import(tmp_path):
    root = _write(tmp_path, {
        "acquisition/session/__init__.py": "",
        "acquisition/session/reader.py": "from acquisition.io.export import to_mne\n",
        "acquisition/io/__init__.py": "",
        "acquisition/io/export.py": "def f():\n    from ..session.reader import Session\n",
        "acquisition/utils/__init__.py": "",
        "acquisition/utils/_config.py": "X = 1\n",
        "fusion/config.py": "from acquisition.utils._config import X\n",
        "data_cards/build.py": "import fusion.config\n",
        "synth/rig.py": "from data_cards import build\n",
    })
    graph, private = import_graph(root)
    assert find_cycles(graph) == [["acquisition.io.export", "acquisition.session.reader"]]
    assert private == ["fusion/config.py:1 imports acquisition.utils._config.X"]
    assert layer_violations(graph) == ["acquisition.session.reader imports acquisition.io.export",
                                       "synth.rig imports data_cards.build"]


@pytest.mark.parametrize("text", ["from acquisition.session import reader\n", "import acquisition.utils\n"])
def test_downward_imports_pass(tmp_path, text):
    root = _write(tmp_path, {"acquisition/session/__init__.py": "", "acquisition/session/reader.py": "",
                             "acquisition/utils/__init__.py": "", "acquisition/io/__init__.py": "",
                             "acquisition/io/export.py": text})
    graph, private = import_graph(root)
    assert not find_cycles(graph) and not private and not layer_violations(graph)
