"""``ncps.interop.from_torch`` on live official modules.

Both packages import as ``ncps``, so this runs in the oracle's process: the official package is
``ncps`` there and ours is loaded beside it under the name ``ncps_mlx``.
"""

import importlib.util
from pathlib import Path

from tests.official import run_official

OURS = list(importlib.util.find_spec("ncps").submodule_search_locations)
INIT = next(str(Path(d) / "__init__.py") for d in OURS if (Path(d) / "__init__.py").is_file())

SCRIPT = """
import importlib.util, json, sys
import numpy as np, torch
import ncps, ncps.torch as nt
spec = importlib.util.spec_from_file_location("ncps_mlx", {init!r}, submodule_search_locations={locs!r})
ours = importlib.util.module_from_spec(spec); sys.modules["ncps_mlx"] = ours; spec.loader.exec_module(ours)
import mlx.core as mx
torch.manual_seed(0)
W = ncps.wirings
cases = {{
    "CfC": lambda: nt.CfC(
        4, 8, proj_size=3, mixed_memory=True, backbone_layers=2, backbone_units=16, activation="silu"
    ),
    "CfC_wired": lambda: nt.CfC(4, W.AutoNCP(12, 3, seed=5), mode="no_gate"),
    "CfC_pure_time_major": lambda: nt.CfC(4, 6, mode="pure", batch_first=False, return_sequences=False),
    "LTC": lambda: nt.LTC(4, W.NCP(5, 4, 3, 3, 2, 3, 2), mixed_memory=True),
    "LTC_fc_linear": lambda: nt.LTC(
        4, W.FullyConnected(5, 2), input_mapping="linear", implicit_param_constraints=False
    ),
    "CfCCell": lambda: nt.CfCCell(4, 7, mode="pure", backbone_layers=0),
    "LTCCell": lambda: nt.LTCCell(W.Random(6, 3, sparsity_level=0.5), in_features=4),
    "WiredCfCCell": lambda: nt.WiredCfCCell(4, W.AutoNCP(10, 2), mode="default"),
}}
result = {{}}
rng = np.random.default_rng(0)
for name, make in cases.items():
    m = make()
    model = ours.interop.from_torch(m)
    if name.startswith(("CfC_", "CfC", "LTC")) and not name.endswith("Cell"):
        shape = (3, 5, 4) if m.batch_first else (5, 3, 4)
        x = rng.normal(size=shape).astype(np.float32)
        with torch.no_grad():
            y = m(torch.tensor(x))[0].numpy()
        y2 = np.array(model(mx.array(x))[0])
    else:
        x = rng.normal(size=(3, 4)).astype(np.float32)
        n = model.state_size
        h = rng.normal(size=(3, n)).astype(np.float32)
        with torch.no_grad():
            y = m(torch.tensor(x), torch.tensor(h), 1.0)[0].numpy()
        y2 = np.array(model(mx.array(x), mx.array(h), 1.0)[0])
    result[name] = {{"type": type(model).__name__, "err": float(np.abs(y - y2).max()), "shape": list(y2.shape)}}
json.dump(result, open(OUT, "w"))
"""


def test_from_torch_matches_live_official_modules():
    result = run_official(SCRIPT.format(init=INIT, locs=OURS))
    assert set(result) == {
        "CfC",
        "CfC_wired",
        "CfC_pure_time_major",
        "LTC",
        "LTC_fc_linear",
        "CfCCell",
        "LTCCell",
        "WiredCfCCell",
    }
    for name, r in result.items():
        assert r["err"] <= 1e-5, (name, r)
    assert result["CfC"]["shape"] == [3, 5, 3]
    assert result["CfC_pure_time_major"]["shape"] == [3, 6]
    assert result["WiredCfCCell"]["type"] == "WiredCfCCell"
