"""The optimizers the ncps fronts build, with the conventions of PyTorch or of Keras.

Why this module exists: ``mlx.optimizers.Adam`` (and ``AdamW``) default to
``bias_correction=False`` and ``mlx.optimizers.Adamax`` has no bias correction at all. Adam's moment
estimates start at zero, so without the correction the update of step :math:`t` is

.. math::

    \\Delta w_t = -\\lambda \\frac{m_t}{\\sqrt{v_t} + \\epsilon}
    \\quad\\text{instead of}\\quad
    -\\lambda \\frac{m_t / (1 - \\beta_1^t)}{\\sqrt{v_t / (1 - \\beta_2^t)} + \\epsilon},

larger by the factor :math:`(1 - \\beta_1^t) / \\sqrt{1 - \\beta_2^t}`: 3.2x at the first step,
6.6x around step 12, still 3.2x at step 100 and 1.26x at step 1000 (with the default betas). A
learning rate that trains well in PyTorch or Keras therefore trains erratically with MLX's default
Adam (a CfC on a UEA set: test accuracy 0.56 instead of torch's 0.95). Every optimizer that ncps
builds for a user comes from here.

Two conventions, each exact in its defaults *and* in its update formula:

``"torch"`` (``ncps.training``, ``ncps.sklearn``, ``ncps.LiquidNeuralNetwork``, the examples)
    ``torch.optim`` defaults. adam: lr 1e-3, betas (0.9, 0.999), eps 1e-8, bias-corrected;
    adamw: the same with decoupled weight decay 1e-2; adamax: lr 2e-3, eps inside the max,
    bias-corrected step; sgd: lr 1e-3, no momentum; rmsprop: lr 1e-2, alpha 0.99, eps 1e-8;
    adagrad: lr 1e-2, eps 1e-10; lion (not in torch; lion-pytorch's): lr 1e-4, betas (0.9, 0.99).

``"keras"`` (``ncps.mini_keras``'s optimizer names)
    ``keras.optimizers`` (Keras 3) defaults. adam: lr 1e-3, eps 1e-7 added *after* the bias
    correction ("epsilon hat"); adamw: the same with weight decay 4e-3; adamax: lr 1e-3, eps 1e-7;
    sgd: lr 1e-2; rmsprop: lr 1e-3, rho 0.9, eps 1e-7 inside the square root; adagrad: lr 1e-3,
    initial accumulator 0.1, eps 1e-7 inside the square root; lion: lr 1e-3, betas (0.9, 0.99).

.. code-block:: python

    from ncps.optimizers import adam, make_optimizer

    opt = adam(5e-3)                                    # = torch.optim.Adam(params, lr=5e-3)
    opt = make_optimizer("rmsprop", convention="keras") # = keras.optimizers.RMSprop()

Gradient clipping: ``mlx.optimizers.clip_grad_norm`` already computes what
``torch.nn.utils.clip_grad_norm_`` does (one global L2 norm over all parameters, gradients scaled
by ``min(1, max_norm / (norm + 1e-6))``); :func:`ncps.training.fit` uses it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mlx.core as mx
import mlx.optimizers as optim

LearningRate = float | Callable[[mx.array], mx.array]

__all__ = [
    "CONVENTIONS",
    "make_optimizer",
    "adam",
    "adamw",
    "adamax",
    "sgd",
    "rmsprop",
    "adagrad",
    "lion",
    "lacks_bias_correction",
    "TorchAdamax",
    "KerasAdam",
    "KerasAdamW",
    "KerasAdamax",
    "KerasRMSprop",
    "KerasAdagrad",
]

CONVENTIONS = ("torch", "keras")


# -- update rules that mlx.optimizers does not have -----------------------------------------------


def _bias_corrections(optimizer: optim.Optimizer, dtype: mx.Dtype) -> tuple[mx.array, mx.array]:
    """``(1 - beta1^t, sqrt(1 - beta2^t))`` at the current step ``t`` (1 at the first update)."""
    b1, b2 = optimizer.betas
    t = optimizer.step.astype(mx.float32)
    return (1 - mx.power(b1, t)).astype(dtype), mx.sqrt(1 - mx.power(b2, t)).astype(dtype)


class TorchAdamax(optim.Adamax):
    """``torch.optim.Adamax``: :math:`u_t = \\max(\\beta_2 u_{t-1}, |g_t| + \\epsilon)`,
    :math:`w_t = w_{t-1} - \\lambda m_t / ((1 - \\beta_1^t) u_t)` (MLX's Adamax has no bias
    correction and adds :math:`\\epsilon` to the denominator)."""

    def apply_single(self, gradient: mx.array, parameter: mx.array, state: dict) -> mx.array:
        b1, b2 = self.betas
        m = b1 * state["m"] + (1 - b1) * gradient
        u = mx.maximum(b2 * state["v"], mx.abs(gradient) + self.eps)
        state["m"], state["v"] = m, u
        c1, _ = _bias_corrections(self, gradient.dtype)
        return parameter - self.learning_rate.astype(gradient.dtype) / c1 * m / u


class KerasAdam(optim.Adam):
    """``keras.optimizers.Adam``: :math:`w_t = w_{t-1} - \\lambda \\frac{\\sqrt{1-\\beta_2^t}}
    {1-\\beta_1^t} \\frac{m_t}{\\sqrt{v_t} + \\hat\\epsilon}`, i.e. Keras' ``epsilon`` is added
    after the bias correction (torch adds it before)."""

    def __init__(self, learning_rate: LearningRate, betas: Any = (0.9, 0.999), eps: float = 1e-7):
        super().__init__(learning_rate, list(betas), eps, bias_correction=True)

    def apply_single(self, gradient: mx.array, parameter: mx.array, state: dict) -> mx.array:
        b1, b2 = self.betas
        m = b1 * state["m"] + (1 - b1) * gradient
        v = b2 * state["v"] + (1 - b2) * mx.square(gradient)
        state["m"], state["v"] = m, v
        c1, c2 = _bias_corrections(self, gradient.dtype)
        alpha = self.learning_rate.astype(gradient.dtype) * c2 / c1
        return parameter - alpha * m / (mx.sqrt(v) + self.eps)


class KerasAdamW(KerasAdam):
    """``keras.optimizers.AdamW``: :math:`w \\leftarrow w (1 - \\lambda\\,\\text{wd})`, then
    :class:`KerasAdam`'s step."""

    def __init__(
        self, learning_rate: LearningRate, betas: Any = (0.9, 0.999), eps: float = 1e-7, weight_decay: float = 0.004
    ):
        super().__init__(learning_rate, betas, eps)
        self.weight_decay = weight_decay

    def apply_single(self, gradient: mx.array, parameter: mx.array, state: dict) -> mx.array:
        lr = self.learning_rate.astype(gradient.dtype)
        return super().apply_single(gradient, parameter * (1 - lr * self.weight_decay), state)


class KerasAdamax(optim.Adamax):
    """``keras.optimizers.Adamax``: :math:`u_t = \\max(\\beta_2 u_{t-1}, |g_t|)`,
    :math:`w_t = w_{t-1} - \\lambda m_t / ((1 - \\beta_1^t)(u_t + \\epsilon))`."""

    def __init__(self, learning_rate: LearningRate, betas: Any = (0.9, 0.999), eps: float = 1e-7):
        super().__init__(learning_rate, list(betas), eps)

    def apply_single(self, gradient: mx.array, parameter: mx.array, state: dict) -> mx.array:
        b1, b2 = self.betas
        m = b1 * state["m"] + (1 - b1) * gradient
        u = mx.maximum(b2 * state["v"], mx.abs(gradient))
        state["m"], state["v"] = m, u
        c1, _ = _bias_corrections(self, gradient.dtype)
        return parameter - self.learning_rate.astype(gradient.dtype) / c1 * m / (u + self.eps)


class KerasRMSprop(optim.RMSprop):
    """``keras.optimizers.RMSprop``: :math:`v_t = \\rho v_{t-1} + (1-\\rho) g_t^2`,
    :math:`w_t = w_{t-1} - \\lambda g_t / \\sqrt{v_t + \\epsilon}` (eps inside the root)."""

    def __init__(self, learning_rate: LearningRate, rho: float = 0.9, eps: float = 1e-7):
        super().__init__(learning_rate, alpha=rho, eps=eps)

    @property
    def rho(self) -> float:
        return self.alpha

    def apply_single(self, gradient: mx.array, parameter: mx.array, state: dict) -> mx.array:
        v = self.alpha * state["v"] + (1 - self.alpha) * mx.square(gradient)
        state["v"] = v
        return parameter - self.learning_rate.astype(gradient.dtype) * gradient * mx.rsqrt(v + self.eps)


class KerasAdagrad(optim.Adagrad):
    """``keras.optimizers.Adagrad``: the accumulator starts at ``initial_accumulator_value``,
    :math:`a_t = a_{t-1} + g_t^2`, :math:`w_t = w_{t-1} - \\lambda g_t / \\sqrt{a_t + \\epsilon}`."""

    def __init__(self, learning_rate: LearningRate, initial_accumulator_value: float = 0.1, eps: float = 1e-7):
        super().__init__(learning_rate, eps=eps)
        self.initial_accumulator_value = initial_accumulator_value

    def init_single(self, parameter: mx.array, state: dict) -> None:
        state["v"] = mx.full(parameter.shape, self.initial_accumulator_value, dtype=parameter.dtype)

    def apply_single(self, gradient: mx.array, parameter: mx.array, state: dict) -> mx.array:
        v = state["v"] + mx.square(gradient)
        state["v"] = v
        return parameter - self.learning_rate.astype(gradient.dtype) * gradient * mx.rsqrt(v + self.eps)


# -- the two conventions --------------------------------------------------------------------------

# name -> (class, default learning rate, default keyword arguments)
_TABLE: dict[str, dict[str, tuple[type, float, dict]]] = {
    "torch": {
        "adam": (optim.Adam, 1e-3, {"betas": [0.9, 0.999], "eps": 1e-8, "bias_correction": True}),
        "adamw": (
            optim.AdamW,
            1e-3,
            {"betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 1e-2, "bias_correction": True},
        ),
        "adamax": (TorchAdamax, 2e-3, {"betas": [0.9, 0.999], "eps": 1e-8}),
        "sgd": (optim.SGD, 1e-3, {"momentum": 0.0, "weight_decay": 0.0, "dampening": 0.0, "nesterov": False}),
        "rmsprop": (optim.RMSprop, 1e-2, {"alpha": 0.99, "eps": 1e-8}),
        "adagrad": (optim.Adagrad, 1e-2, {"eps": 1e-10}),
        "lion": (optim.Lion, 1e-4, {"betas": [0.9, 0.99], "weight_decay": 0.0}),
    },
    "keras": {
        "adam": (KerasAdam, 1e-3, {"betas": [0.9, 0.999], "eps": 1e-7}),
        "adamw": (KerasAdamW, 1e-3, {"betas": [0.9, 0.999], "eps": 1e-7, "weight_decay": 0.004}),
        "adamax": (KerasAdamax, 1e-3, {"betas": [0.9, 0.999], "eps": 1e-7}),
        "sgd": (optim.SGD, 1e-2, {"momentum": 0.0, "nesterov": False}),
        "rmsprop": (KerasRMSprop, 1e-3, {"rho": 0.9, "eps": 1e-7}),
        "adagrad": (KerasAdagrad, 1e-3, {"initial_accumulator_value": 0.1, "eps": 1e-7}),
        "lion": (optim.Lion, 1e-3, {"betas": [0.9, 0.99], "weight_decay": 0.0}),
    },
}

NAMES = tuple(_TABLE["torch"])


def make_optimizer(
    name: str, learning_rate: LearningRate | None = None, convention: str = "torch", **kwargs: Any
) -> optim.Optimizer:
    """An MLX optimizer that updates like ``torch.optim.<Name>`` or ``keras.optimizers.<Name>``.

    Args:
        name: ``"adam"``, ``"adamw"``, ``"adamax"``, ``"sgd"``, ``"rmsprop"``, ``"adagrad"`` or
            ``"lion"`` (any case).
        learning_rate: a float or an MLX schedule; None takes the convention's default.
        convention: ``"torch"`` or ``"keras"`` (see the module docstring for every default).
        **kwargs: overrides of the defaults, by the MLX names (``betas``, ``eps``,
            ``weight_decay``, ``momentum``, ``nesterov``, ``alpha``; Keras: ``rho``,
            ``initial_accumulator_value``).

    Returns:
        A fresh ``mlx.optimizers.Optimizer``.
    """
    if convention not in _TABLE:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    key = str(name).lower()
    if key not in _TABLE[convention]:
        raise ValueError(f"Unknown optimizer {name!r}; expected one of {sorted(NAMES)} or an mlx optimizer")
    cls, default_lr, defaults = _TABLE[convention][key]
    unknown = sorted(set(kwargs) - set(defaults))
    if unknown:
        raise TypeError(f"{convention} {key} takes no argument(s) {unknown}; it accepts {sorted(defaults)}")
    return cls(learning_rate=default_lr if learning_rate is None else learning_rate, **{**defaults, **kwargs})


def _factory(name: str) -> Callable[..., optim.Optimizer]:
    default_lr = _TABLE["torch"][name][1]

    def build(learning_rate: LearningRate = default_lr, **kwargs: Any) -> optim.Optimizer:
        return make_optimizer(name, learning_rate, "torch", **kwargs)

    cls = _TABLE["torch"][name][0]
    build.__name__ = build.__qualname__ = name
    build.__doc__ = (
        f"``torch.optim`` convention {name}: ``{cls.__name__}`` with lr {default_lr:g} and "
        f"{_TABLE['torch'][name][2]} unless overridden (see :func:`make_optimizer`)."
    )
    return build


adam = _factory("adam")
adamw = _factory("adamw")
adamax = _factory("adamax")
sgd = _factory("sgd")
rmsprop = _factory("rmsprop")
adagrad = _factory("adagrad")
lion = _factory("lion")


def lacks_bias_correction(optimizer: optim.Optimizer) -> bool:
    """True for an Adam-family optimizer whose early updates are not bias-corrected: an
    ``mlx.optimizers.Adam``/``AdamW`` with ``bias_correction=False`` or MLX's own ``Adamax``
    (the ones above are corrected). A ``MultiOptimizer`` is checked part by part."""
    if isinstance(optimizer, optim.MultiOptimizer):
        return any(lacks_bias_correction(o) for o in optimizer.optimizers)
    if isinstance(optimizer, (TorchAdamax, KerasAdamax)):
        return False
    if isinstance(optimizer, optim.Adamax):
        return type(optimizer).apply_single is optim.Adamax.apply_single
    if isinstance(optimizer, optim.Adam):
        return not bool(getattr(optimizer, "bias_correction", True))
    return False
