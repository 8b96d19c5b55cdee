"""The import graphs of the package and of the benchmark package have no cycle, function-local
imports included, and nothing in the repository reaches outside it (into the sibling folder of
shared notes that the developers have)."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "python" / "ncps"
BENCHMARKS = ROOT / "benchmarks"
EXTENSIONS = {"ncps._ext"}  # compiled modules: they import nothing of ours


def module_name(path: Path, package: Path = PACKAGE) -> str:
    """The dotted name of ``path``, a file of the package whose folder is ``package``."""
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str], package_dir: Path = PACKAGE) -> set[str]:
    """The modules of ``modules`` that ``path`` imports anywhere (module level or inside functions)."""
    name = module_name(path, package_dir)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            # "from pkg import mod" imports pkg.mod when that is a module, else a name of pkg.
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules | EXTENSIONS else base for a in node.names]
        else:
            continue
        found.update(t for t in targets if t in modules and t != name)
    return found


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """``{module: the modules of the same package it imports}`` for the package in ``package``."""
    files = sorted(package.rglob("*.py"))
    modules = {module_name(p, package) for p in files}
    return {module_name(p, package): imports_of(p, modules, package) for p in files}


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle of ``graph`` as a list of modules (first == last), or [] when there is none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        state[node] = 2
        path.pop()
        return []

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return []


def test_import_graph_is_acyclic():
    graph = import_graph()
    assert "ncps.cells.ltc" in graph and "ncps.backends.cpu.ltc" in graph["ncps.cells.ltc"]
    cycle = find_cycle(graph)
    assert not cycle, "import cycle: " + " -> ".join(cycle)


def test_benchmarks_import_graph_is_acyclic():
    """benchmarks/ imports point down: the CLI (run) over the report, the report over the
    sections, the sections over benchmarks.common, oracle and timing."""
    graph = import_graph(BENCHMARKS)
    assert "benchmarks.report" in graph["benchmarks.run"] and "benchmarks.speed" in graph["benchmarks.report"]
    assert "benchmarks.common.context" in graph["benchmarks.speed"]
    cycle = find_cycle(graph)
    assert not cycle, "import cycle: " + " -> ".join(cycle)


def test_backends_do_not_import_the_cells():
    """The cells name their hook modules in ncps.backends; the backends take a cell as an argument
    and never import ncps.cells (what both LTC backends share is in ncps.backends.ltc_args)."""
    graph = import_graph()
    backends = {m for m in graph if m.startswith("ncps.backends.")}
    assert {"ncps.backends.cpu.ltc", "ncps.backends.gpu.ltc", "ncps.backends.hooks"} <= backends
    upward = {(m, t) for m in backends for t in graph[m] if t == "ncps.cells" or t.startswith("ncps.cells.")}
    assert not upward, f"backend modules import the cells: {sorted(upward)}"


def test_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) == []


def test_ncps_import_is_light():
    lazy = "('sklearn', 'ncps.training', 'ncps.mini_keras')"
    code = f"import sys, ncps; print(sorted(m for m in {lazy} if m in sys.modules))"
    out = subprocess.run([__import__("sys").executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# Assembled here so that this file does not match its own pattern.
_OUTSIDE = "|".join((r"\.\./" + "shared", "NCPS_" + "SHARED_DIR", "shared" + "/oracle"))


def test_nothing_refers_outside_the_repository():
    proc = subprocess.run(["git", "grep", "-nE", _OUTSIDE, "--", "."], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode == 128:  # not a git checkout (an unpacked sdist): nothing to check
        return
    assert proc.stdout == "", proc.stdout


def test_package_imports_itself_relatively():
    """Inside python/ncps every import of the package is relative: the oracle tests load this
    package under another name beside the official ``ncps`` (tests/interop), where an absolute
    ``import ncps...`` would reach the official package instead."""
    absolute = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            absolute += [f"{path.relative_to(ROOT)}:{node.lineno}" for n in names if n.split(".")[0] == "ncps"]
    assert not absolute, f"absolute imports of ncps inside the package: {absolute}"


def readme_layout_block() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("## How the code is laid out")
    return text[text.index("```\n", start) + 4 : text.index("```\n", text.index("```\n", start) + 4)]


def test_readme_layout_names_every_part_of_the_tree():
    """The README's layout block names every module and folder of the package, every folder of
    csrc/, and every top-level folder and script: a part added or renamed without it fails here."""
    block = readme_layout_block()
    parts = [p for p in PACKAGE.iterdir() if p.name != "__pycache__" and not p.name.endswith(".so")]
    parts += [p for p in (ROOT / "csrc").iterdir()] + [p for p in (ROOT / "scripts").iterdir()]
    parts += [
        p for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name not in ("build", "dist")
    ]
    words = {p.name if p.is_file() else p.name + "/" for p in parts}
    missing = sorted(w for w in words if not re.search(rf"(?<![\w.]){re.escape(w)}", block))
    assert not missing, f"README 'How the code is laid out' does not mention: {missing}"
