"""Tests for ncps.wirings: parity with the official package, configs, validation, drawing."""

import json
import sys

import numpy as np
import pytest

from ncps import wirings
from ncps.wirings import NCP, AutoNCP, FullyConnected, Random, Wiring
from tests.official import run_official

# The editable install of our package puts an import hook in sys.meta_path that
# wins over PYTHONPATH, so without this preamble the "official" subprocess would
# import *our* ncps. Drop the hook and make sure the oracle really is upstream.
ORACLE_PREAMBLE = """
import json, sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in type(f).__module__]
import ncps.wirings as W
assert "/.oracle/" in W.__file__.replace("\\\\", "/"), W.__file__
"""

# (class name, args, kwargs, input_dim)
PARITY_CASES = [
    ("FullyConnected", [8], {}, 8),
    ("FullyConnected", [8, 4], {}, 8),
    ("FullyConnected", [5], {"erev_init_seed": 3, "self_connections": False}, 3),
    ("FullyConnected", [12, 2, 42], {}, 7),
    ("FullyConnected", [1], {}, 1),
    ("Random", [16, 4, 0.5], {}, 8),
    ("Random", [10], {"sparsity_level": 0.9, "random_seed": 7}, 5),
    ("Random", [20, 5, 0.0, 3], {}, 4),
    ("Random", [7, 2, 0.33, 123], {}, 11),
    ("Random", [9], {"sparsity_level": 0.75, "random_seed": 0}, 2),
    ("NCP", [10, 10, 8, 6, 6, 4, 6], {}, 8),
    ("NCP", [5, 3, 2, 2, 2, 3, 2], {"seed": 1}, 4),
    ("NCP", [20, 12, 4, 10, 6, 8, 5], {"seed": 99}, 16),
    ("NCP", [2, 6, 2, 1, 1, 2, 2], {}, 3),  # more command than inter neurons
    ("NCP", [6, 4, 3, 0, 0, 0, 0], {"seed": 5}, 5),  # zero fan-outs: all fallbacks
    ("NCP", [30, 5, 1, 1, 1, 0, 1], {"seed": 0}, 2),
]
for _args, _kw in [
    ([16, 1], {}),
    ([16, 4], {}),
    ([28, 4, 0.75], {}),
    ([28, 4, 0.1], {}),
    ([32, 8, 1.0], {}),
    ([64, 8], {}),
    ([128, 16], {}),
    ([10, 1, 0.1], {}),
]:
    for _seed, _input_dim in [(22222, 20), (1, 1), (7, 8)]:
        PARITY_CASES.append(("AutoNCP", _args, {**_kw, "seed": _seed}, _input_dim))

# Official configs of the subclasses whose get_config works upstream.
OFFICIAL_CONFIG_CASES = [
    ("FullyConnected", [6, 2], {"erev_init_seed": 9}, 3),
    ("Random", [9, 3, 0.4, 5], {}, 4),
    ("AutoNCP", [20, 3, 0.6, 11], {}, 6),
]

# With these arguments and seed, command neuron 2 is missed by every inter
# neuron, and int(30 * 1 / 5) = 6 exceeds the 5 command neurons, the upstream
# (wrong) upper bound of the fallback fan-in.
CLIP_BUG_CASE = ("NCP", [30, 5, 1, 1, 1, 0, 1], {"seed": 437}, 2)

ORACLE_CODE = (
    ORACLE_PREAMBLE
    + """
def build(name, args, kwargs, input_dim):
    w = getattr(W, name)(*args, **kwargs)
    w.build(input_dim)
    return w

parity = []
for case in PARITY_CASES:
    w = build(*case)
    entry = {
        "adjacency": w.adjacency_matrix.tolist(),
        "sensory": w.sensory_adjacency_matrix.tolist(),
        "synapse_count": int(w.synapse_count),
    }
    if case[0] == "AutoNCP":
        entry["sizes"] = [
            w._num_inter_neurons, w._num_command_neurons, w._num_motor_neurons,
            w._sensory_fanout, w._inter_fanout, w._recurrent_command_synapses,
            w._motor_fanin,
        ]
    parity.append(entry)

configs = []
for case in OFFICIAL_CONFIG_CASES:
    w = build(*case)
    configs.append({"config": w.get_config(), "adjacency": w.adjacency_matrix.tolist()})

w = build(*CLIP_BUG_CASE)
clip = w.adjacency_matrix.tolist()

json.dump({"parity": parity, "configs": configs, "clip": clip}, open(OUT, "w"))
"""
)


@pytest.fixture(scope="module")
def official():
    header = (
        f"PARITY_CASES = {PARITY_CASES!r}\n"
        f"OFFICIAL_CONFIG_CASES = {OFFICIAL_CONFIG_CASES!r}\n"
        f"CLIP_BUG_CASE = {CLIP_BUG_CASE!r}\n"
    )
    return run_official(header + ORACLE_CODE)


def make(name, args, kwargs, input_dim=None):
    w = getattr(wirings, name)(*args, **kwargs)
    if input_dim is not None:
        w.build(input_dim)
    return w


def all_wirings(built=True):
    """One wiring of every class."""
    ws = [
        FullyConnected(6, 2, erev_init_seed=4),
        FullyConnected(5, self_connections=False),
        Random(9, 3, sparsity_level=0.5, random_seed=2),
        NCP(6, 4, 2, 3, 2, 3, 2, seed=8),
        AutoNCP(20, 3, sparsity_level=0.6, seed=11),
    ]
    base = Wiring(4)
    base.set_output_dim(2)
    base.add_synapse(0, 1, -1)
    base.add_synapse(3, 3, 1)
    ws.append(base)
    if built:
        for w in ws:
            w.build(3)
    return ws


# --------------------------------------------------------------------- parity
@pytest.mark.parametrize("index", range(len(PARITY_CASES)), ids=[f"{c[0]}{c[1]}{c[2]}-I{c[3]}" for c in PARITY_CASES])
def test_matrices_match_official(official, index):
    case = PARITY_CASES[index]
    expected = official["parity"][index]
    w = make(*case)
    assert w.adjacency_matrix.dtype == np.int32
    assert w.sensory_adjacency_matrix.dtype == np.int32
    np.testing.assert_array_equal(w.adjacency_matrix, np.array(expected["adjacency"]))
    np.testing.assert_array_equal(w.sensory_adjacency_matrix, np.array(expected["sensory"]))
    assert w.synapse_count == expected["synapse_count"]
    if case[0] == "AutoNCP":
        sizes = [
            w._num_inter_neurons,
            w._num_command_neurons,
            w._num_motor_neurons,
            w._sensory_fanout,
            w._inter_fanout,
            w._recurrent_command_synapses,
            w._motor_fanin,
        ]
        assert sizes == expected["sizes"]


def test_official_configs_load(official):
    for case, entry in zip(OFFICIAL_CONFIG_CASES, official["configs"]):
        cls = getattr(wirings, case[0])
        w = cls.from_config(entry["config"])
        assert type(w) is cls
        w.build(case[3])  # upstream configs do not record the input size
        np.testing.assert_array_equal(w.adjacency_matrix, np.array(entry["adjacency"]))


def test_ncp_command_fanin_clip_fixed(official):
    """The fallback fan-in of a forgotten command neuron is clipped to the number
    of inter neurons (ours: 6 inputs), not of command neurons (upstream: 5)."""
    ours = make(*CLIP_BUG_CASE).adjacency_matrix
    theirs = np.array(official["clip"])
    inter = slice(6, 36)
    assert np.abs(theirs[inter, 2]).sum() == 5
    assert np.abs(ours[inter, 2]).sum() == 6
    # Everything drawn before the fallback is identical.
    np.testing.assert_array_equal(ours[inter, 1], theirs[inter, 1])


def test_autoncp_table():
    # Sizes from the reference table (inter, command, motor, fanouts).
    w = AutoNCP(28, 4, sparsity_level=0.75)
    assert w.layer_sizes == [15, 9, 4]
    assert (w._sensory_fanout, w._inter_fanout) == (3, 2)
    assert (w._recurrent_command_synapses, w._motor_fanin) == (4, 2)
    w = AutoNCP(128, 16)
    assert w.layer_sizes == [68, 44, 16]
    w.build(20)
    assert (w.synapse_count, w.sensory_synapse_count) == (1892, 680)


# ------------------------------------------------------------- counts, erev
def test_synapse_counts():
    for w in all_wirings():
        assert w.synapse_count == np.abs(w.adjacency_matrix).sum()
        assert w.sensory_synapse_count == np.abs(w.sensory_adjacency_matrix).sum()
        assert isinstance(w.synapse_count, int)
    w = FullyConnected(4)
    w.build(2)
    # Upstream's layers counted the internal matrix (16) for both.
    assert (w.synapse_count, w.sensory_synapse_count) == (16, 8)
    assert FullyConnected(5, self_connections=False).synapse_count == 20
    assert Random(10, sparsity_level=0.5).synapse_count == 50


def test_erev_initializers_are_copies():
    w = FullyConnected(4)
    w.build(3)
    erev, sensory = w.erev_initializer(), w.sensory_erev_initializer()
    np.testing.assert_array_equal(erev, w.adjacency_matrix)
    np.testing.assert_array_equal(sensory, w.sensory_adjacency_matrix)
    erev[:] = 0
    sensory[:] = 0
    assert w.synapse_count == 16 and w.sensory_synapse_count == 12


def test_polarities():
    for w in all_wirings():
        assert set(np.unique(w.adjacency_matrix)) <= {-1, 0, 1}
        assert set(np.unique(w.sensory_adjacency_matrix)) <= {-1, 0, 1}
    w = FullyConnected(30)
    excitatory = (w.adjacency_matrix == 1).mean()
    assert 0.6 < excitatory < 0.73


# --------------------------------------------------------------------- config
@pytest.mark.parametrize("built", [True, False])
def test_config_round_trip(built):
    for w in all_wirings(built):
        config = w.get_config()
        assert config["class"] == type(w).__name__
        config = json.loads(json.dumps(config))
        for restored in (Wiring.from_config(config), type(w).from_config(config)):
            assert type(restored) is type(w)
            assert restored.get_config() == w.get_config()
            assert restored.input_dim == w.input_dim
            assert restored.output_dim == w.output_dim
            assert restored.num_layers == w.num_layers
            np.testing.assert_array_equal(restored.adjacency_matrix, w.adjacency_matrix)
            if built:
                np.testing.assert_array_equal(restored.sensory_adjacency_matrix, w.sensory_adjacency_matrix)
            else:
                assert restored.sensory_adjacency_matrix is None
                a, b = w.copy(), restored
                a.build(5)
                b.build(5)
                np.testing.assert_array_equal(a.adjacency_matrix, b.adjacency_matrix)
                np.testing.assert_array_equal(a.sensory_adjacency_matrix, b.sensory_adjacency_matrix)


def test_config_constructor_arguments():
    w = NCP(10, 10, 8, 6, 6, 4, 6, seed=3)
    config = w.get_config()
    expected = {
        "inter_neurons": 10,
        "command_neurons": 10,
        "motor_neurons": 8,
        "sensory_fanout": 6,
        "inter_fanout": 6,
        "recurrent_command_synapses": 4,
        "motor_fanin": 6,
        "seed": 3,
    }
    assert {k: config[k] for k in expected} == expected
    # get_config must not touch the random state (upstream reseeds it).
    w.get_config()
    w.build(8)
    fresh = NCP(10, 10, 8, 6, 6, 4, 6, seed=3)
    fresh.build(8)
    np.testing.assert_array_equal(w.adjacency_matrix, fresh.adjacency_matrix)

    config = AutoNCP(16, 4, 0.5, seed=9).get_config()
    assert {k: config[k] for k in ("units", "output_size", "sparsity_level", "seed")} == {
        "units": 16,
        "output_size": 4,
        "sparsity_level": 0.5,
        "seed": 9,
    }
    config = Random(8, 2, 0.25, 4).get_config()
    assert (config["sparsity_level"], config["random_seed"], config["output_dim"]) == (0.25, 4, 2)


def test_config_keeps_hand_edits():
    w = AutoNCP(16, 4)
    w.build(3)
    w.add_synapse(15, 15, -1)
    w.add_sensory_synapse(2, 0, 1)
    restored = Wiring.from_config(w.get_config())
    assert restored.adjacency_matrix[15, 15] == -1
    assert restored.sensory_adjacency_matrix[2, 0] == 1


def test_config_errors():
    config = FullyConnected(4).get_config()
    with pytest.raises(ValueError, match="not a subclass of NCP"):
        NCP.from_config(config)
    with pytest.raises(ValueError, match="Unknown wiring class"):
        Wiring.from_config({**config, "class": "Nope"})
    with pytest.raises(ValueError, match="Unexpected keys"):
        Wiring.from_config({**config, "bogus": 1})
    with pytest.raises(ValueError, match="adjacency_matrix"):
        Wiring.from_config({**config, "adjacency_matrix": [[1, 2], [0, 0]]})
    # Upstream NCP configs hold neuron-id lists and a None seed.
    with pytest.raises(ValueError, match="inter_neurons"):
        NCP.from_config({**NCP(3, 3, 2, 2, 2, 2, 2).get_config(), "inter_neurons": [5, 6, 7]})


# ------------------------------------------------------------ build and copy
def test_build_conflict_and_idempotence():
    w = FullyConnected(4)
    w.build(3)
    sensory = w.sensory_adjacency_matrix.copy()
    state = w._rng.bit_generator.state
    w.build(3)  # a no-op: nothing redrawn
    np.testing.assert_array_equal(w.sensory_adjacency_matrix, sensory)
    assert w._rng.bit_generator.state == state
    with pytest.raises(ValueError, match="Conflicting input dimensions"):
        w.build(4)
    with pytest.raises(ValueError, match="input_dim"):
        FullyConnected(4).build(0)


def test_unbuilt_wiring():
    w = NCP(4, 3, 2, 2, 2, 2, 2)
    assert not w.is_built()
    assert w.input_dim is None and w.sensory_adjacency_matrix is None
    assert w.synapse_count == 0  # NCP draws everything in build()
    for fn in (
        lambda: w.sensory_synapse_count,
        w.sensory_erev_initializer,
        lambda: w.add_sensory_synapse(0, 0, 1),
        w.get_graph,
    ):
        with pytest.raises(ValueError, match="must be built"):
            fn()
    graph = w.get_graph(include_sensory_neurons=False)
    assert graph.number_of_nodes() == 9
    w.build(2)
    assert w.is_built() and w.sensory_adjacency_matrix.shape == (2, 9)


def test_copy_is_independent():
    w = AutoNCP(20, 3)
    a, b = w.copy(), w.copy()
    a.build(4)
    b.build(7)
    assert not w.is_built()
    assert a.input_dim == 4 and b.input_dim == 7
    w.build(4)
    np.testing.assert_array_equal(w.adjacency_matrix, a.adjacency_matrix)
    np.testing.assert_array_equal(w.sensory_adjacency_matrix, a.sensory_adjacency_matrix)
    before = w.adjacency_matrix.copy()
    a.add_synapse(0, 0, -a.adjacency_matrix[0, 0] or 1)
    np.testing.assert_array_equal(w.adjacency_matrix, before)
    assert a._rng is not w._rng


# ----------------------------------------------------------------- validation
def test_add_synapse_validation():
    w = Wiring(3)
    for args, name in [
        ((-1, 0, 1), "src"),
        ((3, 0, 1), "src"),
        ((0, 3, 1), "dest"),
        ((0, -1, 1), "dest"),
        ((0, 0, 0), "polarity"),
        ((0, 0, 2), "polarity"),
    ]:
        with pytest.raises(ValueError, match=name):
            w.add_synapse(*args)
    w.add_synapse(2, 0, -1)
    w.add_synapse(2, 0, 1)  # overwrites
    assert w.adjacency_matrix[2, 0] == 1 and w.synapse_count == 1
    w.build(2)
    with pytest.raises(ValueError, match="src must be in \\[0, 2\\)"):
        w.add_sensory_synapse(2, 0, 1)
    with pytest.raises(ValueError, match="dest"):
        w.add_sensory_synapse(0, 3, 1)
    with pytest.raises(ValueError, match="polarity"):
        w.add_sensory_synapse(0, 0, 0)


@pytest.mark.parametrize(
    "args, name",
    [
        ((0, 4, 2, 0, 2, 2, 2), "inter_neurons"),
        ((4, 0, 2, 2, 0, 2, 0), "command_neurons"),
        ((4, 4, 0, 2, 2, 2, 2), "motor_neurons"),
        ((4, 4, 2, 5, 2, 2, 2), "sensory_fanout"),
        ((4, 4, 2, 2, 5, 2, 2), "inter_fanout"),
        ((4, 4, 2, 2, 2, -1, 2), "recurrent_command_synapses"),
        ((4, 4, 2, 2, 2, 2, 5), "motor_fanin"),
        ((4.0, 4, 2, 2, 2, 2, 2), "inter_neurons"),
    ],
)
def test_ncp_validation(args, name):
    with pytest.raises(ValueError, match=name):
        NCP(*args)


def test_autoncp_validation():
    with pytest.raises(ValueError, match="output_size must be less than units - 2"):
        AutoNCP(10, 8)
    with pytest.raises(ValueError, match="between 0.1 and 1.0"):
        AutoNCP(16, 4, sparsity_level=0.05)
    with pytest.raises(ValueError, match="between 0.1 and 1.0"):
        AutoNCP(16, 4, sparsity_level=1.01)
    with pytest.raises(ValueError, match="output_size"):
        AutoNCP(16, 0)
    AutoNCP(16, 4, sparsity_level=0.1)
    AutoNCP(16, 4, sparsity_level=1.0)
    AutoNCP(10, 7)


def test_other_validation():
    with pytest.raises(ValueError, match="units"):
        Wiring(0)
    with pytest.raises(ValueError, match="sparsity_level"):
        Random(8, sparsity_level=1.0)
    with pytest.raises(ValueError, match="sparsity_level"):
        Random(8, sparsity_level=-0.1)
    with pytest.raises(ValueError, match="output_dim"):
        FullyConnected(4, output_dim=5)


# -------------------------------------------------------------- neuron types
def test_ncp_neuron_types_and_layers():
    w = NCP(3, 4, 2, 2, 2, 2, 2)
    assert w.units == 9 and w.output_dim == 2 and w.num_layers == 3
    assert w.get_neurons_of_layer(0) == [6, 7, 8]
    assert w.get_neurons_of_layer(1) == [2, 3, 4, 5]
    assert w.get_neurons_of_layer(2) == [0, 1]
    assert w.layer_sizes == [3, 4, 2]
    types = [w.get_type_of_neuron(i) for i in range(9)]
    assert types == ["motor"] * 2 + ["command"] * 4 + ["inter"] * 3
    with pytest.raises(ValueError, match="layer_id"):
        w.get_neurons_of_layer(3)
    with pytest.raises(ValueError, match="neuron_id"):
        w.get_type_of_neuron(9)
    w.get_neurons_of_layer(0).append(99)  # returns a copy
    assert w.get_neurons_of_layer(0) == [6, 7, 8]


def test_ncp_structure():
    w = AutoNCP(28, 4)
    w.build(5)
    inter, command, motor = (w.get_neurons_of_layer(i) for i in range(3))
    A, S = np.abs(w.adjacency_matrix), np.abs(w.sensory_adjacency_matrix)
    # Sensory synapses only reach inter neurons, and all of them.
    assert S[:, command + motor].sum() == 0 and S[:, inter].sum(0).min() >= 1
    # Inter -> command only; every command neuron has an input and an output.
    assert A[np.ix_(inter, inter + motor)].sum() == 0
    assert A[np.ix_(inter, command)].sum(0).min() >= 1
    assert A[np.ix_(command, motor)].sum(1).min() >= 1
    # Motor neurons project nowhere.
    assert A[motor].sum() == 0


def test_base_wiring_types():
    w = Wiring(5)
    assert w.num_layers == 1 and w.get_neurons_of_layer(0) == list(range(5))
    assert w.output_dim is None and w.get_type_of_neuron(0) == "inter"
    w.set_output_dim(2)
    assert [w.get_type_of_neuron(i) for i in range(5)] == ["motor"] * 2 + ["inter"] * 3
    f = FullyConnected(4)
    assert f.output_dim == 4 and f.get_type_of_neuron(3) == "motor"


# ---------------------------------------------------------------------- graph
def test_get_graph():
    w = NCP(4, 3, 2, 2, 2, 3, 2, seed=3)
    w.build(3)
    graph = w.get_graph()
    assert graph.number_of_nodes() == 9 + 3
    assert graph.number_of_edges() == w.synapse_count + w.sensory_synapse_count
    assert graph.nodes["neuron_0"]["neuron_type"] == "motor"
    assert graph.nodes["neuron_3"]["neuron_type"] == "command"
    assert graph.nodes["sensory_1"]["neuron_type"] == "sensory"
    for src, dest, polarity in graph.edges(data="polarity"):
        j = int(dest.split("_")[1])
        i = int(src.split("_")[1])
        matrix = w.sensory_adjacency_matrix if src.startswith("sensory") else w.adjacency_matrix
        assert polarity == ("excitatory" if matrix[i, j] > 0 else "inhibitory")
    internal = w.get_graph(include_sensory_neurons=False)
    assert internal.number_of_nodes() == 9
    assert internal.number_of_edges() == w.synapse_count


@pytest.fixture
def pyplot():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.close("all")
    yield plt
    plt.close("all")


def test_draw_graph_png(pyplot, tmp_path):
    w = AutoNCP(12, 2, seed=1)
    w.build(3)
    pyplot.figure(figsize=(6, 4))
    handles = w.draw_graph(layout="spring", draw_labels=True)
    pyplot.legend(handles=handles)
    path = tmp_path / "wiring.png"
    pyplot.savefig(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [h.get_label() for h in handles] == [
        "Sensory neurons",
        "Inter neurons",
        "Command neurons",
        "Motor neurons",
        "Excitatory synapse",
        "Inhibitory synapse",
    ]
    # Labels are short enough to sit inside the nodes: s{j} for inputs, the index for neurons.
    texts = {t.get_text() for t in pyplot.gca().texts}
    assert texts == {"s0", "s1", "s2", *map(str, range(12))}
    with pytest.raises(ValueError, match="layout"):
        w.draw_graph(layout="grid")


@pytest.mark.parametrize("layout", ["shell", "layered"])
def test_draw_graph_groups_neurons_by_type(pyplot, layout):
    """shell: one ring per type, a single motor neuron in the centre; layered: one column per
    type, left to right sensory, inter, command, motor."""
    w = AutoNCP(12, 1, seed=1)
    w.build(3)
    pyplot.figure()
    w.draw_graph(layout=layout)
    offsets = {}
    for collection, kind in zip(pyplot.gca().collections, ("sensory", "inter", "command", "motor")):
        offsets[kind] = np.asarray(collection.get_offsets())
    if layout == "shell":
        radius = {k: np.round(np.hypot(*v.T), 6) for k, v in offsets.items()}
        assert all(len(set(r)) == 1 for r in radius.values())
        assert radius["motor"][0] == 0 and radius["command"][0] < radius["inter"][0] < radius["sensory"][0]
    else:
        columns = [set(np.round(offsets[k][:, 0], 6)) for k in ("sensory", "inter", "command", "motor")]
        assert all(len(c) == 1 for c in columns)
        xs = [c.pop() for c in columns]
        assert xs == sorted(xs) and len(set(xs)) == 4


def test_draw_graph_colors(pyplot):
    from matplotlib.colors import to_rgba

    w = NCP(4, 3, 2, 2, 2, 3, 2, seed=3)
    w.build(3)
    pyplot.figure()
    handles = w.draw_graph()
    expected = {
        "Sensory neurons": "tab:olive",
        "Inter neurons": "tab:blue",
        "Command neurons": "tab:purple",
        "Motor neurons": "tab:orange",
    }
    assert {h.get_label(): h.get_facecolor() for h in handles[:4]} == {k: to_rgba(v) for k, v in expected.items()}
    assert {h.get_label(): to_rgba(h.get_color()) for h in handles[4:]} == {
        "Excitatory synapse": to_rgba("tab:green"),
        "Inhibitory synapse": to_rgba("tab:red"),
    }
    # The node collections drawn use one distinct colour per neuron type.
    ax = pyplot.gca()
    node_colors = {tuple(c.get_facecolor()[0]) for c in ax.collections if len(c.get_offsets())}
    assert node_colors == {to_rgba(v) for v in expected.values()}
    # Excitatory synapses are green and inhibitory ones red.
    edge_colors = {to_rgba(p.get_edgecolor())[:3] for p in ax.patches}  # drawn translucent
    assert edge_colors == {to_rgba("tab:green")[:3], to_rgba("tab:red")[:3]}

    pyplot.figure()
    user = {"motor": "black"}
    handles = w.draw_graph(neuron_colors=user, synapse_colors="gray", layout="circular")
    assert user == {"motor": "black"}  # not mutated
    assert handles[3].get_label() == "Motor neurons" and handles[3].get_facecolor() == to_rgba("black")
    assert {to_rgba(p.get_edgecolor())[:3] for p in pyplot.gca().patches} == {to_rgba("gray")[:3]}


def test_plotting_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "networkx", None)
    w = FullyConnected(3)
    w.build(2)
    with pytest.raises(ImportError, match=r"pip install ncps\[plot\]"):
        w.draw_graph()
    with pytest.raises(ImportError, match=r"pip install ncps\[plot\]"):
        w.get_graph()
