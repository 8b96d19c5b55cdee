"""Without the compiled extension the package still imports and runs on the reference path."""

import subprocess
import sys

SCRIPT = """
import importlib.abc, sys, json
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "ncps._ext":
            raise ImportError("simulated: extension missing")
sys.meta_path.insert(0, Block())
import mlx.core as mx, ncps
info = ncps.kernels.info()
out, _ = ncps.LTC(3, 4)(mx.zeros((2, 5, 3)))
fused_error = None
try:
    with ncps.kernels.use("fused"):
        ncps.LTC(3, 4)(mx.zeros((2, 5, 3)))
except NotImplementedError as e:
    fused_error = str(e)
print(json.dumps({"loaded": info["extension_loaded"], "reason": info["reason"], "shape": list(out.shape),
                  "fused_error": fused_error}))
"""


def test_reference_path_without_extension():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    import json

    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["loaded"] is False
    assert "simulated: extension missing" in result["reason"]
    assert result["shape"] == [2, 5, 4]
    assert result["fused_error"] and "not loaded" in result["fused_error"]
