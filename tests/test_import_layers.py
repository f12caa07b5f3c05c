"""Layers without cycles: imports only go down the package's layers, and no modules import each other.

The import graph is read from the source with `ast`, so every import counts: at module level, inside
functions and under `TYPE_CHECKING`. A package's `__init__` (its face, which re-exports its modules) is not a
module of its own in the cycle check, as in `import_cycles.py`; it does count for the layers. Inside a folder
with layers of its own (`SUBLAYERS`: annotate's modules, run, step and executors) the same rule holds one level
down.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping, Set
from pathlib import Path

import pytest

import lerobot_keyframes

PACKAGE = Path(lerobot_keyframes.__file__).resolve().parent

# bottom to top: a folder (or top-level module) imports only from its own layer's folders and the ones below
LAYERS: tuple[tuple[str, ...], ...] = (
    ("utils", "progress"),
    ("dataset",),
    ("frames", "vlm", "language"),
    ("quality", "transform"),
    ("evaluate", "hub"),
    ("annotate",),
    ("review", "demo", "testing"),
    ("cli",),
)

# Inside these folders, bottom to top: a sub-folder or module imports only from its own sub-layer and the ones below.
SUBLAYERS: Mapping[str, tuple[tuple[str, ...], ...]] = {
    "annotate": (
        ("config", "context", "frame_store"),  # what a module is given: its settings, its episode, its frames
        ("modules",),  # plan, interjections, vqa, motion, the registry
        ("keyframes",),  # the frames the enabled modules declare
        ("run",),  # what a run is: paths, preflight, keys, staging, the writer, publish
        ("engine",),  # the step: episodes through the modules, staged
        ("executors",),  # who runs the step: datasets.map, the local run, Ray, HF Jobs
    ),
}


def _modules(package: Path) -> dict[str, Path]:
    """{dotted module name: file} of every module of the package (a package by its `__init__`)."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(module: str, path: Path, modules: Set[str]) -> Iterator[tuple[str, int]]:
    """(imported module of the package, line) for every import statement of `module`, at any depth."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{alias.name}" for alias in node.names]  # `from x import y`: the module x.y, or x
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name:
                yield name, node.lineno


def _top(module: str) -> str | None:
    """The top-level folder or module a module belongs to (None: the package's own `__init__`)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _part(module: str, folder: str) -> str | None:
    """The sub-folder or module of `folder` a module belongs to (None: outside it, or its own `__init__`)."""
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[1] == folder else None


def upward_imports(package: Path, layers: tuple[tuple[str, ...], ...] = LAYERS,
                   sublayers: Mapping[str, tuple[tuple[str, ...], ...]] = SUBLAYERS) -> list[str]:
    """One line per import from a lower layer into a higher one (and per folder that has no layer), the
    sub-layers of `sublayers`' folders included."""
    layer = {name: i for i, group in enumerate(layers) for name in group}
    inner = {folder: {name: i for i, group in enumerate(groups) for name in group} for folder, groups in sublayers.items()}
    modules = _modules(package)
    problems: set[tuple[str, int, str]] = set()
    for module, path in modules.items():
        src = _top(module)
        if src is None:  # the package's face re-exports every layer (lazily)
            continue
        if src not in layer:
            problems.add((module, 0, f"{module}: {src} has no layer; add it to LAYERS"))
            continue
        sub = inner.get(src, {})
        part = _part(module, src)
        if sub and part is not None and part not in sub:
            problems.add((module, 0, f"{module}: {src}.{part} has no layer; add it to SUBLAYERS[{src!r}]"))
            continue
        for target, line in _imports(module, path, modules.keys()):
            dst = _top(target)
            if dst is not None and dst in layer and layer[dst] > layer[src]:
                problems.add((module, line, f"{module} line {line} imports {target}: {src} (layer {layer[src]}) "
                                            f"is below {dst} (layer {layer[dst]})"))
            to = _part(target, src) if dst == src else None
            if part in sub and to in sub and sub[to] > sub[part]:
                problems.add((module, line, f"{module} line {line} imports {target}: {src}.{part} (sub-layer "
                                            f"{sub[part]}) is below {src}.{to} (sub-layer {sub[to]})"))
    return [text for *_, text in sorted(problems)]


def import_graph(package: Path) -> dict[str, set[str]]:
    """{module: the modules it imports}, without the package faces (`__init__`) and without itself."""
    modules = _modules(package)
    faces = {m for m, p in modules.items() if p.name == "__init__.py"}
    return {m: {t for t, _ in _imports(m, p, modules.keys()) if t != m and t not in faces}
            for m, p in modules.items()}


def cycles(graph: Mapping[str, Set[str]]) -> list[frozenset[str]]:
    """The groups of modules that import each other (strongly connected, more than one module; Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[frozenset[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(frozenset(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(groups, key=sorted)


def _short(module: str) -> str:
    return module.partition(".")[2]


def cycle_lines(graph: Mapping[str, Set[str]]) -> list[str]:
    """One line per group of modules importing each other, with its imports."""
    out = []
    for group in cycles(graph):
        short = frozenset(_short(m) for m in group)
        edges = ", ".join(f"{_short(a)} -> {_short(b)}" for a in sorted(group) for b in sorted(graph[a] & group))
        out.append(f"{' <-> '.join(sorted(short))} ({edges})")
    return out


def test_imports_only_go_down_the_layers() -> None:
    problems = upward_imports(PACKAGE)
    assert not problems, "imports from a lower layer into a higher one (move the shared piece down):\n" + "\n".join(
        problems)


def test_no_modules_import_each_other() -> None:
    found = cycle_lines(import_graph(PACKAGE))
    assert not found, ("modules that import each other (move the shared piece into a module both import; an "
                       "import inside a function counts too):\n" + "\n".join(found))


@pytest.fixture
def tiny_package(tmp_path: Path) -> Path:
    """A package whose `utils` imports `cli` inside a function and whose `frames` modules import each other
    (one of them only for type checking)."""
    pkg = tmp_path / "pkg"
    files = {
        "__init__.py": "",
        "utils/__init__.py": "",
        "utils/files.py": "def f():\n    from ..cli import main\n    return main\n",
        "cli/__init__.py": "from ..utils import files\nmain = files\n",
        "frames/__init__.py": "from .a import A\n",
        "frames/a.py": "from .b import B\nA = B\n",
        "frames/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import A\nB = 1\n",
        "frames/c.py": "from . import a\nfrom pkg.frames.b import B\n",
    }
    for name, text in files.items():
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        (pkg / name).write_text(text)
    return pkg


def test_the_checks_see_imports_inside_functions_and_for_type_checking(tiny_package: Path) -> None:
    assert upward_imports(tiny_package, sublayers={}) == [
        "pkg.utils.files line 2 imports pkg.cli: utils (layer 0) is below cli (layer 7)"]
    graph = import_graph(tiny_package)
    assert graph["pkg.frames.c"] == {"pkg.frames.a", "pkg.frames.b"}
    assert cycles(graph) == [frozenset({"pkg.frames.a", "pkg.frames.b"})]
    assert cycle_lines(graph) == ["frames.a <-> frames.b (frames.a -> frames.b, frames.b -> frames.a)"]


def test_the_sublayers_of_a_folder_are_checked_one_level_down(tiny_package: Path) -> None:
    """In a folder with sub-layers, an import up them is reported (the face, `frames/__init__`, re-exports freely);
    a module without a sub-layer is named."""
    assert upward_imports(tiny_package, sublayers={"frames": (("b",), ("a", "c"))}) == [
        "pkg.frames.b line 3 imports pkg.frames.a: frames.b (sub-layer 0) is below frames.a (sub-layer 1)",
        "pkg.utils.files line 2 imports pkg.cli: utils (layer 0) is below cli (layer 7)"]
    assert upward_imports(tiny_package, sublayers={"frames": (("a", "b"),)})[0] == (
        "pkg.frames.c: frames.c has no layer; add it to SUBLAYERS['frames']")
