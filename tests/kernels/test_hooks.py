"""Every CPU and GPU hook module implements the one hook interface, ncps.backends.hooks.Hooks (CPU
modules also StreamingHooks): each member present, functions callable with a signature compatible
with the protocol's, constants of the declared type. The modules are found from the cells'
``fused`` / ``gpu_fused`` attributes, so a new cell's hooks are checked without editing this file."""

from __future__ import annotations

import inspect
import types
import typing

import pytest

import ncps
from ncps.backends.hooks import Hooks, StreamingHooks
from ncps.cells import Cell

P = inspect.Parameter


def cell_classes() -> list[type]:
    """Every subclass of Cell that ncps defines."""
    out, todo = [], [Cell]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            if sub.__module__.startswith("ncps.") and sub not in out:
                out.append(sub)
                todo.append(sub)
    return out


def hook_modules() -> dict[str, tuple[types.ModuleType, str]]:
    """``{module name: (module, "fused" | "gpu_fused")}`` over every cell class."""
    found = {}
    for cls in cell_classes():
        for attr in ("fused", "gpu_fused"):
            module = getattr(cls, attr)
            if module is not None:
                found[module.__name__] = (module, attr)
    return found


def protocol_members(proto: type) -> tuple[dict[str, type], dict[str, inspect.Signature]]:
    """The protocol's constants ``{name: type}`` and functions ``{name: signature without self}``."""
    constants, functions = {}, {}
    for cls in reversed(proto.__mro__):
        if cls in (object, typing.Generic) or cls.__name__ == "Protocol":
            continue
        constants.update(typing.get_type_hints(cls))
        for name, value in vars(cls).items():
            if not name.startswith("_") and callable(value):
                sig = inspect.signature(value)
                functions[name] = sig.replace(parameters=list(sig.parameters.values())[1:])
    return constants, functions


def signature_problems(name: str, want: inspect.Signature, have: inspect.Signature) -> list[str]:
    """Why a function with signature ``have`` cannot be called as ``want`` describes (empty: it can).

    Every positional parameter of ``want`` is at the same place in ``have`` under the same name, every
    keyword-only one is accepted by name, a parameter with a default in ``want`` has one in ``have``
    (callers omit it), and every further parameter of ``have`` has a default."""
    problems = []
    positional = (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD)
    have_pos = [p for p in have.parameters.values() if p.kind in positional]
    want_pos = [p for p in want.parameters.values() if p.kind in positional]
    for i, p in enumerate(want_pos):
        if i >= len(have_pos) or have_pos[i].name != p.name:
            got = have_pos[i].name if i < len(have_pos) else "nothing"
            problems.append(f"{name}: positional parameter {i} must be {p.name!r}, got {got}")
    for p in want.parameters.values():
        q = have.parameters.get(p.name)
        if q is None or q.kind not in (P.POSITIONAL_OR_KEYWORD, p.kind):
            if p.kind == P.KEYWORD_ONLY:
                problems.append(f"{name}: keyword parameter {p.name!r} is not accepted")
        elif p.default is not P.empty and q.default is P.empty:
            problems.append(f"{name}: parameter {p.name!r} needs a default")
    for q in have.parameters.values():
        extra = q.name not in want.parameters and q.kind not in (P.VAR_POSITIONAL, P.VAR_KEYWORD)
        if extra and q.default is P.empty:
            problems.append(f"{name}: extra parameter {q.name!r} needs a default")
    return problems


def protocol_problems(module: object, proto: type) -> list[str]:
    """Why ``module`` does not implement ``proto`` (empty: it does)."""
    constants, functions = protocol_members(proto)
    problems = []
    for name, kind in constants.items():
        if not hasattr(module, name):
            problems.append(f"{name} is missing")
        elif not isinstance(getattr(module, name), kind):
            problems.append(f"{name} must be a {kind.__name__}, got {type(getattr(module, name)).__name__}")
    for name, want in functions.items():
        fn = getattr(module, name, None)
        if not callable(fn):
            problems.append(f"{name} is missing or not callable")
        else:
            problems += signature_problems(name, want, inspect.signature(fn))
    return problems


def test_the_hook_modules_are_the_backends():
    modules = hook_modules()
    assert set(modules) == {
        "ncps.backends.cpu.ltc",
        "ncps.backends.cpu.cfc",
        "ncps.backends.gpu.ltc",
        "ncps.backends.gpu.cfc",
    }
    for name, (_, attr) in modules.items():  # CPU hooks are named by `fused`, GPU hooks by `gpu_fused`
        assert attr == ("fused" if name.startswith("ncps.backends.cpu.") else "gpu_fused"), name
    assert ncps.LTCCell.fused.__name__ == "ncps.backends.cpu.ltc"
    assert ncps.WiredCfCCell.gpu_fused is ncps.CfCCell.gpu_fused


@pytest.mark.parametrize("name", sorted(hook_modules()))
def test_hook_module_implements_the_protocol(name):
    module, _ = hook_modules()[name]
    proto = StreamingHooks if name.startswith("ncps.backends.cpu.") else Hooks
    assert protocol_problems(module, proto) == []
    assert isinstance(module, proto)
    assert module.kernel_name(False) == module.KERNEL


def test_the_protocol_lists_the_hooks():
    constants, functions = protocol_members(Hooks)
    assert constants == {"KERNEL": str}
    assert set(functions) == {"kernel_name", "why_not", "sequence", "step"}
    assert " ".join(functions["sequence"].parameters) == "cell x h0 dt lstm c0 backend stream"
    assert set(protocol_members(StreamingHooks)[1]) == set(functions) | {"infer", "prepared_step"}


def test_the_check_finds_what_a_module_gets_wrong():
    real, _ = hook_modules()["ncps.backends.gpu.ltc"]
    bad = types.ModuleType("bad_hooks")
    vars(bad).update({k: getattr(real, k) for k in ("why_not", "kernel_name", "step")})
    bad.KERNEL = 3

    def sequence(cell, x, h0, dt, c0=None, lstm=None, *, stream=None, threads):
        raise AssertionError("not called")

    def kernel_name(mixed_memory):
        return "k"

    bad.sequence = sequence
    problems = protocol_problems(bad, Hooks)
    assert "KERNEL must be a str, got int" in problems
    assert "sequence: positional parameter 4 must be 'lstm', got c0" in problems
    assert "sequence: keyword parameter 'backend' is not accepted" in problems
    assert "sequence: extra parameter 'threads' needs a default" in problems
    del bad.step
    bad.kernel_name = kernel_name
    problems = protocol_problems(bad, Hooks)
    assert "step is missing or not callable" in problems
    assert "kernel_name: parameter 'mixed_memory' needs a default" in problems
    assert not isinstance(bad, Hooks)
