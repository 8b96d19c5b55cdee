"""The liquid time-constant (LTC) cell (Hasani et al., AAAI 2021) in the form of the official ncps.

Each neuron ``i`` is a leaky membrane driven by conductance-based synapses:

.. math::

    c_{m,i} \\frac{dv_i}{dt} = g_{l,i}(v_{l,i} - v_i)
        + \\sum_k W_{ki}(v_k)(E_{ki} - v_i) + \\sum_j S_{ji}(\\tilde x_j)(E^s_{ji} - v_i)

    W_{ki}(v) = w_{ki}\\,\\sigma(\\sigma_{ki}(v - \\mu_{ki}))\\,m_{ki}, \\qquad
    S_{ji}(\\tilde x) = w^s_{ji}\\,\\sigma(\\sigma^s_{ji}(\\tilde x - \\mu^s_{ji}))\\,m^s_{ji}

where ``m`` and ``m^s`` are the (frozen) wiring masks. One time step of length ``Δt`` runs
``K = ode_unfolds`` semi-implicit Euler sub-steps of ``h = Δt/K``, conductances frozen at the
previous sub-step and the input held fixed:

.. math::

    v \\leftarrow \\frac{(c_m/h)\\,v + g_l v_l + \\sum_k W_{ki}E_{ki} + \\sum_j S_{ji}E^s_{ji}}
                       {c_m/h + g_l + \\sum_k W_{ki} + \\sum_j S_{ji} + \\varepsilon}

Shapes: input ``x`` ``(B, I)``, state ``v`` ``(B, N)``, output ``(B, M)`` (the first ``M`` neurons
are the motor neurons), ``Δt`` a float or ``(B,)``/``(B, 1)``.

Fixes against the official package: per-sample ``Δt`` is honoured (upstream broadcasts ``(B,)``
against the neuron axis), and ``Δt = 0`` leaves the state unchanged (upstream divides by zero and
returns NaN).
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from .. import _checks, kernels
from .._aliases import official_names
from ..backends.cpu import ltc as cpu_ltc
from ..backends.gpu import ltc as gpu_ltc
from ..backends.ltc_args import SOLVER_PARAMS  # noqa: F401  (the solver parameters, in the kernels' order)
from ..wirings import Wiring
from .base import Cell, WiredSizes, built_copy

# "affine" (x*w + b), "linear" (x*w), or the identity (the official package takes any other value
# for it; only these spellings are accepted, so that a typo of "affine" is an error).
MAPPINGS = ("affine", "linear", None, "none", "identity")

_INIT_RANGES = {
    "gleak": (0.001, 1.0),
    "vleak": (-0.2, 0.2),
    "cm": (0.4, 0.6),
    "w": (0.001, 1.0),
    "sigma": (3.0, 8.0),
    "mu": (0.3, 0.8),
    "sensory_w": (0.001, 1.0),
    "sensory_sigma": (3.0, 8.0),
    "sensory_mu": (0.3, 0.8),
}


def _synapses(v: mx.array, w: mx.array, sigma: mx.array, mu: mx.array, mask: mx.array) -> mx.array:
    """Synaptic conductances ``(B, S, N)`` for presynaptic potentials ``v`` ``(B, S)``."""
    return w * mx.sigmoid(sigma * (v[:, :, None] - mu)) * mask


def ltc_step(x: mx.array, v: mx.array, dt: float | mx.array, p: dict, ode_unfolds: int, epsilon: float) -> mx.array:
    """One LTC time step: ``K`` semi-implicit sub-steps from state ``v`` under mapped input ``x``.

    ``p`` holds the effective solver parameters (names in :data:`SOLVER_PARAMS`, positivity
    constraints and masks already applied); ``dt`` is a float or a ``(B, 1)`` array.
    """
    s = _synapses(x, p["sensory_w"], p["sensory_sigma"], p["sensory_mu"], p["sensory_mask"])
    num_s = (s * p["sensory_erev"]).sum(axis=1)
    den_s = s.sum(axis=1)
    if isinstance(dt, (int, float)):
        if dt == 0:
            return v
        if not 0 < dt < float("inf"):  # an invalid Δt never gives a plausible state
            return mx.full(v.shape, float("nan"), dtype=v.dtype)
        moving, h = None, dt / ode_unfolds
    else:
        # Δt = 0 keeps the state; a safe step there keeps NaN out of both branches of the where
        # (and its gradient). Negative, NaN and infinite Δt become NaN (docs/reliability.md).
        dt = mx.where((dt >= 0) & (dt < float("inf")), dt, float("nan"))
        moving = dt != 0
        h = mx.where(moving, dt, 1.0) / ode_unfolds
    cm_t = p["cm"] / h
    leak = p["gleak"] * p["vleak"]
    v0 = v
    for _ in range(ode_unfolds):
        a = _synapses(v, p["w"], p["sigma"], p["mu"], p["mask"])
        num = (a * p["erev"]).sum(axis=1) + num_s
        den = a.sum(axis=1) + den_s
        v = (cm_t * v + leak + num) / (cm_t + p["gleak"] + den + epsilon)
    return v if moving is None else mx.where(moving, v, v0)


def ltc_sequence(x: mx.array, h0: mx.array, dt: mx.array, p: dict, ode_unfolds: int, epsilon: float) -> mx.array:
    """Reference LTC over a whole sequence: mapped inputs ``(B, T, I)``, ``h0`` ``(B, N)``,
    ``dt`` ``(B, T)``; returns the state after every step, ``(B, T, N)``.

    The fused primitive (:func:`ncps.backends.cpu.ltc.ltc_sequence`) computes exactly this.
    """
    v, states = h0, []
    for t in range(x.shape[1]):
        v = ltc_step(x[:, t], v, dt[:, t : t + 1], p, ode_unfolds, epsilon)
        states.append(v)
    return mx.stack(states, axis=1)


@mx.compile
def _affine(v: mx.array, w: mx.array, b: mx.array) -> mx.array:
    return v * w + b


class _Memo:
    """Values computed from ``sources`` (a tuple of arrays), None until computed. ``tokens`` (the
    extension's ``ArrayToken``) tell an in-place update of a source (``w[...] = v`` keeps the
    object but swaps its descriptor) from the array it was."""

    __slots__ = ("sources", "tokens", "values")

    def __init__(self, sources: tuple, tokens: tuple):
        self.sources = sources
        self.tokens = tokens
        self.values: tuple | None = None

    def holds(self, raw: tuple) -> bool:
        return all(a is b and t.same(b) for a, b, t in zip(self.sources, raw, self.tokens))


class LTCCell(WiredSizes, Cell):
    """A liquid time-constant cell on a wiring: ``cell(x, state, ts=1.0) -> (output, new_state)``.

    Args:
        wiring: the connectivity (an int-sized fully connected layer is ``FullyConnected(units)``).
            The cell builds and keeps its own copy, so one wiring may serve several cells.
        in_features: input size; needed unless the wiring is already built.
        input_mapping, output_mapping: ``"affine"`` (``x*w + b``), ``"linear"`` (``x*w``) or
            anything else for the identity.
        ode_unfolds: semi-implicit sub-steps per time step.
        epsilon: added to the solver's denominator.
        implicit_param_constraints: if True, ``w``, ``sensory_w``, ``cm`` and ``gleak`` pass through
            softplus; if False (the official cell's default), call :meth:`apply_weight_constraints`
            after each optimizer step.

    Parameters keep the official names (``gleak, vleak, cm, sigma, mu, w, erev, sensory_*``,
    ``input_w/b``, ``output_w/b``); the masks ``sparsity_mask`` and ``sensory_sparsity_mask`` are
    frozen.
    """

    def __init__(
        self,
        wiring: Wiring,
        in_features: int | None = None,
        input_mapping: str = "affine",
        output_mapping: str = "affine",
        ode_unfolds: int = 6,
        epsilon: float = 1e-8,
        implicit_param_constraints: bool = False,
    ):
        super().__init__()
        _checks.integer(ode_unfolds, "ode_unfolds", 1, _checks.MAX_ODE_UNFOLDS)
        _checks.choice(input_mapping, "input_mapping", MAPPINGS)
        _checks.choice(output_mapping, "output_mapping", MAPPINGS)
        _checks.real(epsilon, "epsilon", 0.0)
        implicit_param_constraints = _checks.boolean(implicit_param_constraints, "implicit_param_constraints")
        self._config = dict(
            wiring=None,
            in_features=in_features,
            input_mapping=input_mapping,
            output_mapping=output_mapping,
            ode_unfolds=ode_unfolds,
            epsilon=epsilon,
            implicit_param_constraints=implicit_param_constraints,
        )
        self._wiring = wiring = built_copy(wiring, in_features, "in_features")
        self._config.update(wiring=wiring, in_features=wiring.input_dim)
        self.input_mapping = input_mapping
        self.output_mapping = output_mapping
        self.ode_unfolds = int(ode_unfolds)
        self.epsilon = float(epsilon)
        self.implicit_param_constraints = implicit_param_constraints

        N, I, M = self.state_size, self.sensory_size, self.motor_size

        def init(name: str, shape: tuple) -> mx.array:
            lo, hi = _INIT_RANGES[name]
            return mx.random.uniform(lo, hi, shape)

        self.gleak = init("gleak", (N,))
        self.vleak = init("vleak", (N,))
        self.cm = init("cm", (N,))
        self.sigma = init("sigma", (N, N))
        self.mu = init("mu", (N, N))
        self.w = init("w", (N, N))
        self.erev = mx.array(wiring.erev_initializer(), dtype=mx.float32)
        self.sensory_sigma = init("sensory_sigma", (I, N))
        self.sensory_mu = init("sensory_mu", (I, N))
        self.sensory_w = init("sensory_w", (I, N))
        self.sensory_erev = mx.array(wiring.sensory_erev_initializer(), dtype=mx.float32)
        self.sparsity_mask = mx.array(np.abs(wiring.adjacency_matrix), dtype=mx.float32)
        self.sensory_sparsity_mask = mx.array(np.abs(wiring.sensory_adjacency_matrix), dtype=mx.float32)
        if input_mapping in ("affine", "linear"):
            self.input_w = mx.ones((I,))
        if input_mapping == "affine":
            self.input_b = mx.zeros((I,))
        if output_mapping in ("affine", "linear"):
            self.output_w = mx.ones((M,))
        if output_mapping == "affine":
            self.output_b = mx.zeros((M,))
        self.freeze(keys=["sparsity_mask", "sensory_sparsity_mask"], recurse=False)

    fused = cpu_ltc  # covers mixed memory too
    gpu_fused = gpu_ltc  # the GPU kernels; their why_not says what they cover

    # -- math --------------------------------------------------------------------------------
    def _positive(self, z: mx.array) -> mx.array:
        return nn.softplus(z) if self.implicit_param_constraints else z

    def _constrained(self) -> tuple:
        """``sensory_w, w, cm, gleak`` through :meth:`_positive`.

        With implicit constraints the softplus of these ~N² + I·N elements is most of an eager
        call at B 1, T 1 (MLX's CPU ``exp`` is scalar: ~120 µs of ~220 µs for AutoNCP(64, 8)), so
        the evaluated results are kept while the four parameters stay the same arrays: the same
        objects (an optimizer step, ``update``, ``load_weights`` or ``set_dtype`` replaces them) with
        the same descriptors (an in-place ``w[...] = v`` swaps it), as the prepared streaming step
        checks them (``ArrayToken``, ``ParamGuard`` in csrc/common/stream_step.h). They are kept from the second
        call on the same objects, evaluated then: a training step, whose parameters are new
        tracers at every call, never pays for the extra evaluation, and inside ``mx.compile`` or
        ``vmap`` (where evaluating raises) nothing is kept. Inside ``mx.grad`` the kept arrays are
        the tracers' own softplus, so gradients flow through them as through the lazy ones."""
        raw = (self["sensory_w"], self["w"], self["cm"], self["gleak"])  # Module is a dict
        if not self.implicit_param_constraints:
            return raw
        token = getattr(kernels._ext, "ArrayToken", None)  # None without the extension: no memo
        if token is None:
            return tuple(nn.softplus(a) for a in raw)
        memo = self.__dict__.get("_constraint_memo")
        if memo is not None and memo.holds(raw):
            if memo.values is not None:
                return memo.values
            values = tuple(nn.softplus(a) for a in raw)
            try:
                mx.eval(values)
            except ValueError:  # inside mx.compile or vmap: keep nothing
                return values
            memo.values = values
            return values
        # Holding the sources keeps their ids from being reused by other arrays.
        object.__setattr__(self, "_constraint_memo", _Memo(raw, tuple(token(a) for a in raw)))
        return tuple(nn.softplus(a) for a in raw)

    def solver_params(self) -> dict:
        """The effective solver parameters (constraints applied, masks attached)."""
        sensory_w, w, cm, gleak = self._constrained()
        get = self.get  # the arrays without nn.Module.__getattr__ (a Python call per name)
        return {
            "sensory_w": sensory_w,
            "sensory_sigma": get("sensory_sigma"),
            "sensory_mu": get("sensory_mu"),
            "sensory_erev": get("sensory_erev"),
            "sensory_mask": get("sensory_sparsity_mask"),
            "w": w,
            "sigma": get("sigma"),
            "mu": get("mu"),
            "erev": get("erev"),
            "mask": get("sparsity_mask"),
            "cm": cm,
            "gleak": gleak,
            "vleak": get("vleak"),
        }

    def _mapped(self, v: mx.array, mapping: str, side: str) -> mx.array:
        """``v * w + b`` (affine), ``v * w`` (linear) or ``v``, with ``w, b = <side>_w, <side>_b``."""
        if mapping in ("affine", "linear"):
            v = v * self[f"{side}_w"]
        return v + self[f"{side}_b"] if mapping == "affine" else v

    def map_inputs(self, x: mx.array) -> mx.array:
        return self._mapped(x, self.input_mapping, "input")

    def map_outputs(self, v: mx.array) -> mx.array:
        motor = v[..., : self._wiring.output_dim]
        if v.ndim == 3 and self.output_mapping == "affine":
            # A sequence's motor columns are a strided view: one compiled pass instead of two
            # eager ops (B 32, T 100, 8 of 64 columns: float32 30 -> 23 us, bfloat16 143 -> 56 us).
            return _affine(motor, self["output_w"], self["output_b"])
        return self._mapped(motor, self.output_mapping, "output")

    def step(self, x: mx.array, v: mx.array, ts: float | mx.array) -> mx.array:
        """The new state (no input checks; ``ts`` a float or ``(B, 1)``)."""
        return ltc_step(self.map_inputs(x), v, ts, self.solver_params(), self.ode_unfolds, self.epsilon)

    def readout(self, v: mx.array) -> mx.array:
        return self.map_outputs(v)

    def apply_weight_constraints(self) -> None:
        """Clip ``w``, ``sensory_w``, ``cm`` and ``gleak`` at zero (explicit-constraint mode)."""
        for name in ("w", "sensory_w", "cm", "gleak"):
            setattr(self, name, mx.maximum(getattr(self, name), 0.0))

    @official_names(inputs="x", states="state", elapsed_time="ts")
    def __call__(self, x: mx.array, state: mx.array | None = None, ts: float | mx.array = 1.0):
        """One step (see :meth:`Cell.__call__`); also takes the official names ``inputs=``,
        ``states=`` and ``elapsed_time=``."""
        return super().__call__(x, state, ts)
