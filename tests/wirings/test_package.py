"""ncps.wirings as a package (core, basic, ncp, drawing): every name of the former single module
ncps/wirings.py is still reachable from ncps.wirings, pickles that name that module still load, and
the plotting libraries stay optional imports."""

import pickle
import subprocess
import sys

import numpy as np

import ncps
from ncps import wirings
from ncps.wirings import NCP, AutoNCP, FullyConnected, Random, Wiring

# The module-level names of ncps/wirings.py before the split (classes, helpers, constants).
FORMER_NAMES = [
    "Wiring",
    "FullyConnected",
    "Random",
    "NCP",
    "AutoNCP",
    "_NOT_BUILT",
    "_POLARITY_2_TO_1",
    "_POLARITY_1_TO_1",
    "_DEFAULT_NEURON_COLORS",
    "_DEFAULT_SYNAPSE_COLORS",
    "_NEURON_TYPE_ORDER",
    "_check_int",
    "_seed_value",
    "_import_plotting",
    "_short_label",
    "_graph_layout",
    "_as_adjacency",
]


def test_every_name_of_the_former_module_is_still_there():
    assert wirings.__all__ == ["Wiring", "FullyConnected", "Random", "NCP", "AutoNCP"]
    missing = [name for name in FORMER_NAMES if not hasattr(wirings, name)]
    assert not missing
    assert wirings._check_int("units", np.int64(3), 1) == 3 and wirings._short_label("sensory_4") == "s4"
    homes = {cls: cls.__module__ for cls in (Wiring, FullyConnected, Random, NCP, AutoNCP)}
    assert homes == {
        Wiring: "ncps.wirings.core",
        FullyConnected: "ncps.wirings.basic",
        Random: "ncps.wirings.basic",
        NCP: "ncps.wirings.ncp",
        AutoNCP: "ncps.wirings.ncp",
    }


def _built(cls, *args):
    wiring = cls(*args)
    wiring.build(3)
    return wiring


def test_pickles_that_name_the_former_module_still_load():
    cases = [
        _built(Wiring, 4),
        _built(FullyConnected, 5, 2),
        _built(Random, 6, 2, 0.5),
        _built(NCP, 3, 2, 1, 2, 1, 1, 1),
        _built(AutoNCP, 8, 2),
    ]
    for wiring in cases:
        name = type(wiring).__name__
        blob = pickle.dumps(wiring, protocol=2)
        # A pickle written before the split names the class as ncps.wirings.<name>.
        current = f"c{type(wiring).__module__}\n{name}\n".encode()
        assert blob.count(current) == 1
        again = pickle.loads(blob.replace(current, f"cncps.wirings\n{name}\n".encode()))
        assert type(again) is type(wiring) and again.get_config() == wiring.get_config()


def test_saved_models_name_the_wiring_by_class_only(tmp_path):
    layer = ncps.CfC(3, AutoNCP(8, 2))
    ncps.save(layer, tmp_path / "m.safetensors")
    again = ncps.load(tmp_path / "m.safetensors")
    assert type(again.rnn_cell.wiring) is AutoNCP
    np.testing.assert_array_equal(again.rnn_cell.wiring.adjacency_matrix, layer.rnn_cell.wiring.adjacency_matrix)


def test_the_plotting_libraries_stay_optional_imports():
    code = (
        "import sys, ncps.wirings as W\n"
        "w = W.AutoNCP(8, 2); w.build(3); w.get_config(); repr(w)\n"
        "assert 'networkx' not in sys.modules and 'matplotlib' not in sys.modules, sorted(sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
