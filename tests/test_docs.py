"""Every Python code block of README.md and docs/*.md runs as written, each on its own (a fresh
namespace, imports and data included), so that what a new user copies works.

A block that cannot run here starts with ``# not run: <why>``; the test checks that such a block
still compiles and gives its reason. The official data sets are absent (the loaders are made
offline), so their loaders raise ``DatasetNotFoundError``, which the blocks that use them catch.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NOT_RUN = re.compile(r"#\s*not run:\s*\S")


def python_blocks(path: Path) -> list[tuple[int, str]]:
    """``(first line number, code)`` of every fenced ```` ```python ```` block of ``path``."""
    blocks, current, start = [], None, 0
    for number, line in enumerate(path.read_text().splitlines(), 1):
        stripped = line.strip()
        if current is None and stripped == "```python":
            current, start = [], number + 1
        elif current is not None and stripped.startswith("```"):
            blocks.append((start, "\n".join(current)))
            current = None
        elif current is not None:
            current.append(line)
    return blocks


BLOCKS = [(path, line, code) for path in DOCS for line, code in python_blocks(path)]


def test_the_docs_have_python_blocks():
    names = {path.name for path, _, _ in BLOCKS}
    assert {"README.md", "training.md", "fronts.md"} <= names, names


@pytest.mark.parametrize("path, line, code", BLOCKS, ids=[f"{p.relative_to(ROOT)}:{line}" for p, line, _ in BLOCKS])
def test_block_runs_as_written(path, line, code, tmp_path, monkeypatch):
    from ncps.datasets import utils

    def offline(url, *args, **kwargs):
        raise OSError("offline")

    monkeypatch.setattr(utils, "urlopen", offline)
    monkeypatch.setenv("MPLBACKEND", "Agg")  # wiring.draw_graph() in a block: no window
    monkeypatch.chdir(tmp_path)
    name = f"{path.relative_to(ROOT)}:{line}"
    compiled = compile(code, name, "exec")
    first = code.lstrip().splitlines()[0] if code.strip() else ""
    if first.startswith("# not run"):
        assert NOT_RUN.match(first), f"{name}: a skipped block says why: '# not run: <why>'"
        return
    try:
        exec(compiled, {"__name__": f"docs_block_{line}"})
    except Exception as exc:  # the message names the block and shows it
        raise AssertionError(f"the python block at {name} fails as written: {exc!r}\n{code}") from exc
