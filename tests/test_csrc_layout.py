"""csrc/ is layered and every model has the same skeleton.

Layers, bottom to top: ``common/`` -> ``<model>/problem`` (the problem as plain data) ->
``<model>/cpu/`` (the kernels, compiled once per instruction-set target) -> ``<model>/primitives``
(MLX graph nodes, vjp) -> ``<model>/ops`` (validation, what the bindings expose) ->
``bindings.cpp``. No ``#include`` points up a layer or across models, and the build compiles
every source once: the kernel sources per target, the rest for the baseline."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CSRC = ROOT / "csrc"
MODELS = ("ltc", "cfc")
LAYERS = {"common": 0, "problem": 1, "cpu": 2, "primitives": 3, "ops": 4, "bindings": 5}
# Every model's skeleton (more files may sit beside these, in the layer they belong to).
SKELETON = (
    "problem.h",
    "problem.cpp",
    "cpu/kernel.h",
    "cpu/forward.cpp",
    "cpu/backward.cpp",
    "primitives.h",
    "primitives.cpp",
    "ops.h",
    "ops.cpp",
)
INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^">]+)[">]', re.MULTILINE)


def sources() -> list[Path]:
    return sorted(p for p in CSRC.rglob("*") if p.suffix in (".h", ".cpp"))


def layer(rel: str) -> tuple[str | None, int] | None:
    """(model or None, rank) of a path relative to csrc/, or None when it is in no layer."""
    parts = rel.split("/")
    if parts[0] == "common":
        return None, LAYERS["common"]
    if rel == "bindings.cpp":
        return None, LAYERS["bindings"]
    if parts[0] in MODELS and len(parts) >= 2:
        if parts[1] == "cpu" and len(parts) >= 3:
            return parts[0], LAYERS["cpu"]
        stem = parts[1].split(".")[0]
        if len(parts) == 2 and stem in ("problem", "primitives", "ops"):
            return parts[0], LAYERS[stem]
    return None


def bad_include(src: str, dst: str) -> str | None:
    """Why ``#include "dst"`` in ``src`` (both relative to csrc/) breaks the layering, or None."""
    a, b = layer(src), layer(dst)
    if a is None or b is None:
        return f"{src if a is None else dst} is in no layer"
    if b[1] > a[1]:
        return "points up a layer"
    if a[0] is not None and b[0] is not None and a[0] != b[0]:
        return "points into another model"
    return None


def includes() -> list[tuple[str, str]]:
    """(file, included file) for every #include of a file under csrc/, paths relative to csrc/."""
    edges = []
    for path in sources():
        for target in INCLUDE.findall(path.read_text()):
            if (CSRC / target).is_file():
                edges.append((str(path.relative_to(CSRC)), target))
    return edges


def test_the_rule_catches_what_it_should():
    assert bad_include("ltc/cpu/problem.h", "ltc/primitives.h") == "points up a layer"
    assert bad_include("common/ops.h", "cfc/problem.h") == "points up a layer"
    assert bad_include("cfc/ops.cpp", "ltc/problem.h") == "points into another model"
    assert bad_include("ltc/plan.h", "common/isa.h") == "ltc/plan.h is in no layer"
    assert bad_include("ltc/ops.cpp", "ltc/cpu/kernel.h") is None
    assert bad_include("bindings.cpp", "cfc/ops.h") is None


def test_every_source_is_in_a_layer():
    assert [str(p.relative_to(CSRC)) for p in sources() if layer(str(p.relative_to(CSRC))) is None] == []


def test_no_include_points_up_a_layer_or_across_models():
    edges = includes()
    assert len(edges) > 30, "too few includes found: is the pattern right?"
    bad = [f"{src}: #include {dst!r} {why}" for src, dst in edges if (why := bad_include(src, dst))]
    assert bad == []


def test_quoted_includes_of_our_folders_exist():
    """A path that starts in one of csrc's folders names a file that exists (a moved file's old
    path would otherwise only fail the build)."""
    ours = {p.name for p in CSRC.iterdir() if p.is_dir()}
    missing = [
        f"{path.relative_to(CSRC)}: {target}"
        for path in sources()
        for target in INCLUDE.findall(path.read_text())
        if target.split("/")[0] in ours and not (CSRC / target).is_file()
    ]
    assert missing == []


def test_every_model_has_the_same_skeleton():
    assert {d.name for d in CSRC.iterdir() if d.is_dir()} == {"common", *MODELS}
    missing = [f"{m}/{f}" for m in MODELS for f in SKELETON if not (CSRC / m / f).is_file()]
    assert missing == []


def cmake_sources(text: str) -> list[str]:
    return re.findall(r"\bcsrc/[\w/]+\.cpp\b", text)


def test_the_build_compiles_every_source_once_kernels_per_target():
    """cpu/ sources (and common/convert.cpp, common/math_probe.cpp) are the kernel sources of
    cmake/kernel_targets.cmake, compiled once per instruction set; every other .cpp is in
    CMakeLists.txt's module, once."""
    kernel = cmake_sources((ROOT / "cmake" / "kernel_targets.cmake").read_text().split("# The first flag set")[0])
    module = cmake_sources((ROOT / "CMakeLists.txt").read_text().split("nanobind_add_module(")[1].split(")")[0])
    assert len(kernel) == len(set(kernel)) and len(module) == len(set(module))
    assert not set(kernel) & set(module)
    every = {str(p.relative_to(ROOT)) for p in sources() if p.suffix == ".cpp"}
    assert set(kernel) | set(module) == every
    assert {s for s in kernel if "/cpu/" not in s} == {"csrc/common/convert.cpp", "csrc/common/math_probe.cpp"}
    assert all("/cpu/" not in s for s in module)
