"""The fused LTC sequence primitive (ncps._ext.ltc_sequence / ncps.backends.cpu.ltc.ltc_sequence) against the
pure-MLX reference ncps.cells.ltc.ltc_sequence: outputs, gradients, transforms, training and validation."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
import pytest

from ncps import kernels
from ncps import wirings as W
from ncps.backends.cpu import ltc as fused
from ncps.backends.ltc_args import LSTM_PARAMS, LTC_INPUTS
from ncps.cells.ltc import SOLVER_PARAMS, LTCCell, ltc_sequence
from tests.wirings.small import SMALL_NCP

pytestmark = pytest.mark.skipif(kernels._ext is None, reason="the extension ncps._ext is not built")

ARGS = LTC_INPUTS
MASKS = ("sensory_mask", "mask")


# ---------------------------------------------------------------------------------------------
def make_case(wiring, I, B, T, seed=0, zero_dt=(), implicit=False, perturb=True):
    """(x, h0, dt, params) for an LTC cell on ``wiring`` with random inputs and per-sample dt."""
    mx.random.seed(seed)
    rng = np.random.default_rng(seed)
    cell = LTCCell(wiring, in_features=I, implicit_param_constraints=implicit)
    p = dict(cell.solver_params())
    N = cell.state_size
    if perturb:  # move the parameters off their init so every term matters
        p["vleak"] = mx.array(rng.uniform(-0.5, 0.5, N).astype(np.float32))
        p["erev"] = p["erev"] * mx.array(rng.uniform(0.5, 1.5, (N, N)).astype(np.float32))
    x = mx.array(rng.normal(size=(B, T, I)).astype(np.float32))
    h0 = mx.array(rng.normal(scale=0.5, size=(B, N)).astype(np.float32))
    dt = rng.uniform(0.2, 1.6, size=(B, T)).astype(np.float32)
    for b, t in zero_dt:
        dt[b, t] = 0.0
    return x, h0, mx.array(dt), p


def run_fused(x, h0, dt, p, K, eps=1e-8):
    return fused.ltc_sequence(x, h0, dt, p, K, eps)


def weighted_loss(fn, R, K, eps=1e-8):
    def loss(*args):
        x, h0, dt, *ps = args
        return (fn(x, h0, dt, dict(zip(SOLVER_PARAMS, ps)), K, eps) * R).sum()

    return loss


def all_grads(fn, x, h0, dt, p, K, R, eps=1e-8):
    args = [x, h0, dt] + [p[k] for k in SOLVER_PARAMS]
    return mx.grad(weighted_loss(fn, R, K, eps), argnums=list(range(len(args))))(*args)


def assert_close_grads(ga, gb, tol=1e-4, skip=MASKS):
    for name, a, b in zip(ARGS, ga, gb):
        if name in skip:
            continue
        a, b = np.array(a), np.array(b)
        assert a.shape == b.shape, name
        assert np.all(np.isfinite(a)), name
        err = np.abs(a - b).max() if a.size else 0.0
        assert err <= tol * max(1.0, np.abs(b).max() if b.size else 0.0), f"{name}: max err {err:.3g}"


def check_against_reference(x, h0, dt, p, K, eps=1e-8, out_tol=1e-5, grad_tol=1e-4):
    a = run_fused(x, h0, dt, p, K, eps)
    b = ltc_sequence(x, h0, dt, p, K, eps)
    assert a.shape == b.shape and a.dtype == mx.float32
    np.testing.assert_allclose(np.array(a), np.array(b), atol=out_tol, rtol=0)
    R = mx.array(np.random.default_rng(123).normal(size=a.shape).astype(np.float32))
    ga = all_grads(run_fused, x, h0, dt, p, K, R, eps)
    gb = all_grads(ltc_sequence, x, h0, dt, p, K, R, eps)
    assert_close_grads(ga, gb, grad_tol)
    # The masks multiply inside the primitive: they get exactly zero gradient, and so do the
    # parameters of absent synapses.
    g = dict(zip(ARGS, ga))
    for m in MASKS:
        assert not np.any(np.array(g[m]))
    off = np.array(p["mask"]) == 0
    s_off = np.array(p["sensory_mask"]) == 0
    for k in ("w", "sigma", "mu", "erev"):
        assert not np.any(np.array(g[k])[off]), k
        assert not np.any(np.array(g["sensory_" + k])[s_off]), "sensory_" + k
    return ga


def ncp_small():
    return W.NCP(**SMALL_NCP)


WIRINGS = {
    "fc": lambda: W.FullyConnected(8),
    "random": lambda: W.Random(10, sparsity_level=0.5),
    "ncp": ncp_small,
    "autoncp": lambda: W.AutoNCP(16, 4),
}


# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("K", [1, 6])
@pytest.mark.parametrize("kind", list(WIRINGS))
def test_matches_reference(kind, K):
    x, h0, dt, p = make_case(WIRINGS[kind](), I=4, B=3, T=6, seed=len(kind) + K, zero_dt=[(1, 2), (0, 5)])
    check_against_reference(x, h0, dt, p, K)


@pytest.mark.parametrize(
    "B,T,I,N",
    [
        (1, 1, 3, 5),  # single sample, single step
        (12, 4, 2, 9),  # 8-lane tiles with 2 threads, one 16-lane tile with 1
        (40, 3, 5, 20),
    ],  # several 16-lane tiles, last one padded
)
def test_sizes(B, T, I, N):
    x, h0, dt, p = make_case(W.Random(N, sparsity_level=0.3), I=I, B=B, T=T, seed=B, zero_dt=[(B - 1, T - 1)])
    check_against_reference(x, h0, dt, p, K=3)


@pytest.mark.parametrize("N,K", [(100, 6), (184, 2)])
def test_dense_large(N, K):
    # Large synapse sets switch the backward's memory strategy: N=100, K=6 recomputes the sigmoids
    # in the adjoint (too many to keep); N=184 also folds the accumulator lanes (too many synapses).
    x, h0, dt, p = make_case(W.FullyConnected(N), I=2, B=17, T=2, seed=6, perturb=False)
    ga = check_against_reference(x, h0, dt, p, K=K)
    # Deterministic: the same call gives bit-identical gradients.
    R = mx.array(np.random.default_rng(123).normal(size=(17, 2, N)).astype(np.float32))
    gb = all_grads(run_fused, x, h0, dt, p, K, R)
    for a, b in zip(ga, gb):
        np.testing.assert_array_equal(np.array(a), np.array(b))


def test_dt_zero_freezes_state_and_invalid_dt_is_nan():
    x, h0, dt, p = make_case(W.AutoNCP(12, 3), I=3, B=4, T=5, seed=7)
    dt = np.array(dt)
    dt[:, 1] = 0.0  # every sample frozen at step 1
    dt[2, 3] = 0.0
    bad = dt.copy()
    dt = mx.array(dt)
    out = np.array(run_fused(x, h0, dt, p, 6))
    assert np.all(np.isfinite(out))
    np.testing.assert_array_equal(out[:, 1], out[:, 0])
    np.testing.assert_array_equal(out[2, 3], out[2, 2])
    ga = check_against_reference(x, h0, dt, p, 6)
    gdt = np.array(ga[2])
    assert gdt[0, 1] == 0 and gdt[2, 3] == 0
    assert np.all(gdt[:, 2] != 0)
    # With every step frozen the states are h0 and the cotangent reaches h0 unchanged.
    dt0 = mx.zeros_like(dt)
    np.testing.assert_array_equal(
        np.array(run_fused(x, h0, dt0, p, 6)), np.broadcast_to(np.array(h0)[:, None], out.shape)
    )
    R = mx.array(np.random.default_rng(0).normal(size=out.shape).astype(np.float32))
    g = all_grads(run_fused, x, h0, dt0, p, 6, R)
    np.testing.assert_allclose(np.array(g[1]), np.array(R).sum(axis=1), rtol=1e-6)
    assert not any(np.any(np.array(a)) for n, a in zip(ARGS, g) if n != "h0")
    # A negative, NaN or infinite dt makes that sample's state NaN from that step on, as the
    # reference does (docs/reliability.md): never a plausible number.
    for value in (-0.5, np.nan, np.inf):
        d = bad.copy()
        d[3, 2] = value
        got = np.array(run_fused(x, h0, mx.array(d), p, 6))
        want = np.array(ltc_sequence(x, h0, mx.array(d), p, 6, 1e-8))
        assert np.isnan(got[3, 2:]).all() and np.isfinite(got[:3]).all() and np.isfinite(got[3, :2]).all()
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))


def test_non_binary_mask_and_implicit_constraints():
    x, h0, dt, p = make_case(W.Random(7, sparsity_level=0.4), I=3, B=2, T=4, seed=3, implicit=True)
    m = np.array(p["mask"])
    m[m != 0] *= np.random.default_rng(0).uniform(0.3, 1.0, size=int((m != 0).sum()))
    p["mask"] = mx.array(m.astype(np.float32))
    check_against_reference(x, h0, dt, p, 4, eps=1e-3)


def test_strided_inputs():
    x, h0, dt, p = make_case(W.FullyConnected(6), I=4, B=5, T=7, seed=11)
    ref = ltc_sequence(x, h0, dt, p, 6, 1e-8)
    xt = mx.transpose(mx.array(np.ascontiguousarray(np.array(x).transpose(1, 0, 2))), (1, 0, 2))
    h0s = mx.array(np.repeat(np.array(h0), 2, axis=1))[:, ::2]
    dts = mx.transpose(mx.array(np.ascontiguousarray(np.array(dt).T)))
    q = dict(p)
    q["w"] = mx.transpose(mx.array(np.ascontiguousarray(np.array(p["w"]).T)))
    q["sensory_mu"] = mx.broadcast_to(p["sensory_mu"][:1], p["sensory_mu"].shape)  # broadcast view
    q["cm"] = mx.array(np.repeat(np.array(p["cm"]), 3))[1::3]
    out = run_fused(xt, h0s, dts, q, 6)
    ref_q = ltc_sequence(x, h0, dt, q, 6, 1e-8)
    np.testing.assert_allclose(np.array(out), np.array(ref_q), atol=1e-5, rtol=0)
    assert np.abs(np.array(ref_q) - np.array(ref)).max() > 1e-3  # the broadcast sensory_mu matters
    R = mx.ones(out.shape)
    ga = all_grads(run_fused, xt, h0s, dts, q, 6, R)
    gb = all_grads(ltc_sequence, x, h0, dt, q, 6, R)
    assert_close_grads(ga, gb)


@pytest.mark.parametrize("dtype,tol", [(mx.float16, 2e-3), (mx.bfloat16, 1.6e-2)])
def test_half_precision_input(dtype, tol):
    """The primitive reads and writes half arrays (float32 inside); its outputs take MLX's promotion
    of every input but dt, as the reference path does."""
    x, h0, dt, p = make_case(W.AutoNCP(10, 3), I=3, B=2, T=5, seed=5)
    xh = x.astype(dtype)
    # A half input with float32 state and parameters: float32 out, exactly the widened input's result.
    out = run_fused(xh, h0, dt, p, 6)
    assert out.dtype == mx.float32
    ref = ltc_sequence(xh.astype(mx.float32), h0, dt, p, 6, 1e-8)
    np.testing.assert_allclose(np.array(out), np.array(ref), atol=1e-5, rtol=0)
    gx = mx.grad(lambda x_: run_fused(x_, h0, dt, p, 6).sum())(xh)
    assert gx.dtype == dtype
    gref = mx.grad(lambda x_: ltc_sequence(x_, h0, dt, p, 6, 1e-8).sum())(xh.astype(mx.float32))
    np.testing.assert_allclose(np.array(gx.astype(mx.float32)), np.array(gref), atol=tol, rtol=tol)
    # Everything half (dt float32 takes no part): half out, the float32 result rounded once.
    q = {k: v.astype(dtype) for k, v in p.items()}
    out2 = run_fused(xh, h0.astype(dtype), dt, q, 6)
    assert out2.dtype == dtype
    ref2 = ltc_sequence(xh, h0.astype(dtype), dt, {k: v.astype(mx.float32) for k, v in q.items()}, 6, 1e-8)
    assert mx.array_equal(out2, ref2.astype(dtype)).item()


def test_finite_difference_directional_derivative():
    """Central difference of the fused forward along a random direction in all 14 differentiable
    arguments against <grad, direction> from the fused backward."""
    x, h0, dt, p = make_case(ncp_small(), I=4, B=2, T=4, seed=2)
    args = [x, h0, dt] + [p[k] for k in SOLVER_PARAMS]
    rng = np.random.default_rng(9)
    R = mx.array(rng.normal(size=(2, 4, 11)).astype(np.float32))
    loss = weighted_loss(run_fused, R, 6)
    grads = mx.grad(loss, argnums=list(range(len(args))))(*args)
    dirs = []
    for name, a in zip(ARGS, args):
        d = rng.normal(size=a.shape).astype(np.float32)
        if name in MASKS:
            d[:] = 0
        elif name in ("w", "sigma", "mu", "erev"):
            d *= np.array(p["mask"]) != 0  # only real synapses move the output
        elif name.startswith("sensory_"):
            d *= np.array(p["sensory_mask"]) != 0
        dirs.append(d)
    analytic = sum(float((np.array(g, dtype=np.float64) * d).sum()) for g, d in zip(grads, dirs))
    h = 1e-2
    plus = loss(*[a + h * mx.array(d) for a, d in zip(args, dirs)]).item()
    minus = loss(*[a - h * mx.array(d) for a, d in zip(args, dirs)]).item()
    numeric = (plus - minus) / (2 * h)
    assert abs(analytic) > 1.0
    assert abs(numeric - analytic) <= 2e-3 * abs(analytic) + 1e-3, (numeric, analytic)


def test_compile_forward_grad_and_cse():
    x, h0, dt, p = make_case(W.AutoNCP(12, 3), I=3, B=4, T=5, seed=4)
    ps = [p[k] for k in SOLVER_PARAMS]

    def f(x, h0, dt, *ps):
        q = dict(zip(SOLVER_PARAMS, ps))
        # Same inputs, different ode_unfolds / epsilon: compile's CSE must keep them apart.
        return (
            fused.ltc_sequence(x, h0, dt, q, 2, 1e-8),
            fused.ltc_sequence(x, h0, dt, q, 3, 1e-8),
            fused.ltc_sequence(x, h0, dt, q, 3, 0.5),
        )

    eager = f(x, h0, dt, *ps)
    comp = mx.compile(f)(x, h0, dt, *ps)
    for a, b in zip(eager, comp):
        np.testing.assert_array_equal(np.array(a), np.array(b))
    assert np.abs(np.array(eager[0]) - np.array(eager[1])).max() > 1e-4
    assert np.abs(np.array(eager[1]) - np.array(eager[2])).max() > 1e-4

    R = mx.array(np.random.default_rng(1).normal(size=eager[0].shape).astype(np.float32))
    loss = weighted_loss(run_fused, R, 6)
    argn = list(range(16))
    g_eager = mx.grad(loss, argnums=argn)(x, h0, dt, *ps)
    g_comp = mx.compile(mx.grad(loss, argnums=argn))(x, h0, dt, *ps)
    for name, a, b in zip(ARGS, g_eager, g_comp):
        np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-6, atol=1e-7, err_msg=name)

    # value_and_grad under compile with shapeless tracing, reused for a new batch size.
    def loss_r(x, h0, dt, R, *ps):
        return (fused.ltc_sequence(x, h0, dt, dict(zip(SOLVER_PARAMS, ps)), 6, 1e-8) * R).sum()

    vg = mx.compile(mx.value_and_grad(loss_r, argnums=[0, 4]), shapeless=True)
    for b in (4, 2):
        v, (gx, gsw) = vg(x[:b], h0[:b], dt[:b], R[:b], *ps)
        ve, (gxe, gswe) = mx.value_and_grad(loss_r, argnums=[0, 4])(x[:b], h0[:b], dt[:b], R[:b], *ps)
        assert gx.shape == (b,) + x.shape[1:]
        np.testing.assert_allclose(v.item(), ve.item(), rtol=1e-6)
        np.testing.assert_allclose(np.array(gx), np.array(gxe), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(np.array(gsw), np.array(gswe), rtol=1e-6, atol=1e-7)


class _TinyLTC(nn.Module):
    def __init__(self, wiring, I):
        super().__init__()
        self.cell = LTCCell(wiring, in_features=I, implicit_param_constraints=True)

    def __call__(self, x, dt):
        h0 = mx.zeros((x.shape[0], self.cell.state_size))
        states = fused.ltc_sequence(
            self.cell.map_inputs(x), h0, dt, self.cell.solver_params(), self.cell.ode_unfolds, self.cell.epsilon
        )
        return self.cell.map_outputs(states)


def test_training_lowers_loss():
    mx.random.seed(0)
    rng = np.random.default_rng(0)
    B, T, I = 8, 10, 2
    t = np.linspace(0, 2 * np.pi, T)[None, :] + rng.uniform(0, 2 * np.pi, size=(B, 1))
    x = mx.array(np.stack([np.sin(t), np.cos(t)], axis=-1).astype(np.float32))
    y = mx.array(np.sin(t + 0.5)[..., None].astype(np.float32))
    dt = mx.ones((B, T))
    model = _TinyLTC(W.AutoNCP(8, 1), I)
    opt = optim.Adam(learning_rate=0.03)

    def loss_fn(m):
        return ((m(x, dt) - y) ** 2).mean()

    vg = nn.value_and_grad(model, loss_fn)
    losses = []
    for _ in range(25):
        loss, grads = vg(model)
        assert "sparsity_mask" not in grads["cell"]  # frozen
        opt.update(model, grads)
        mx.eval(model.parameters(), opt.state)
        losses.append(loss.item())
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.5 * losses[0], losses


# ---------------------------------------------------------------------------------------------
def test_the_extension_takes_the_python_argument_order():
    """The C++ input table (csrc/ltc/problem.h) and the Python one (ncps.backends.ltc_args), which
    the wrappers and the GPU kernels pass arrays in, name the same inputs in the same order."""
    mixed = [*LTC_INPUTS, "lstm_input", *("lstm_" + k for k in LSTM_PARAMS), "c0"]
    assert kernels._ext.ltc_inputs() == mixed


def test_bad_shapes_raise_value_error():
    x, h0, dt, p = make_case(W.FullyConnected(6), I=3, B=4, T=5, seed=1)
    cases = [
        ("x", dict(x=x[0])),
        ("h0", dict(h0=h0[:, :5])),
        ("dt", dict(dt=dt[:, :4])),
        ("sensory_mu", dict(sensory_mu=p["sensory_mu"][:2])),
        ("sensory_mask", dict(sensory_mask=p["sensory_mask"].T)),
        ("sigma", dict(sigma=p["sigma"][:, :5])),
        ("mask", dict(mask=p["mask"][None])),
        ("w", dict(w=p["w"][:5])),
        ("cm", dict(cm=p["cm"][:5])),
        ("vleak", dict(vleak=p["vleak"][None])),
    ]
    for name, change in cases:
        kw = dict(x=x, h0=h0, dt=dt, **p)
        kw.update(change)
        with pytest.raises(ValueError, match=rf"\b{name}\b"):
            kernels._ext.ltc_sequence(kw["x"], kw["h0"], kw["dt"], *(kw[k] for k in SOLVER_PARAMS), 6, 1e-8)
        q = {k: kw[k] for k in SOLVER_PARAMS}
        with pytest.raises(ValueError, match=rf"\b{name}\b"):
            fused.ltc_sequence(kw["x"], kw["h0"], kw["dt"], q, 6, 1e-8)
    with pytest.raises(ValueError, match=r"h0 must have shape \(B, N\) = \(4, 6\), got \(4, 5\)"):
        kernels._ext.ltc_sequence(x, h0[:, :5], dt, *(p[k] for k in SOLVER_PARAMS), 6, 1e-8)
    with pytest.raises(ValueError, match="ode_unfolds"):
        kernels._ext.ltc_sequence(x, h0, dt, *(p[k] for k in SOLVER_PARAMS), 0, 1e-8)
    with pytest.raises(ValueError, match="ode_unfolds"):
        fused.ltc_sequence(x, h0, dt, p, 0)
    with pytest.raises(ValueError, match="missing"):
        fused.ltc_sequence(x, h0, dt, {k: v for k, v in p.items() if k != "gleak"})


def test_wrapper_needs_extension(monkeypatch):
    assert fused.LTC_PARAMS == SOLVER_PARAMS  # the primitive's argument order
    x, h0, dt, p = make_case(W.FullyConnected(3), I=2, B=1, T=2, seed=0)
    monkeypatch.setattr(fused, "_ext", None)
    with pytest.raises(RuntimeError, match="ncps._ext"):
        fused.ltc_sequence(x, h0, dt, p)


def test_empty_and_stream():
    x, h0, dt, p = make_case(W.FullyConnected(4), I=2, B=3, T=2, seed=0)
    out = fused.ltc_sequence(x[:, :0], h0, dt[:, :0], p, stream=mx.cpu)
    assert out.shape == (3, 0, 4)
    mx.eval(out)
    g = mx.grad(lambda h: fused.ltc_sequence(x[:, :0], h, dt[:, :0], p).sum())(h0)
    np.testing.assert_array_equal(np.array(g), 0)
    s = mx.new_stream(mx.cpu)
    np.testing.assert_array_equal(
        np.array(fused.ltc_sequence(x, h0, dt, p, stream=s)), np.array(fused.ltc_sequence(x, h0, dt, p))
    )
    with pytest.raises(RuntimeError, match="jvp"):
        mx.jvp(lambda x_: fused.ltc_sequence(x_, h0, dt, p), [x], [mx.ones_like(x)])
    with pytest.raises(RuntimeError, match="vmap"):
        mx.vmap(lambda x_: fused.ltc_sequence(x_, h0, dt, p))(mx.stack([x, x]))


# ---------------------------------------------------------------------------------------------
# Mixed memory: ncps._ext.ltc_mixed_sequence / ncps.backends.cpu.ltc.ltc_mixed_sequence (an LSTM before every
# LTC step) against a pure-MLX loop of the official semantics.
MIXED_ARGS = ARGS + ("lstm_input", "input_w", "input_b", "recurrent_w", "c0")


def ref_mixed(x, h0, c0, dt, p, u, lp, K, eps=1e-8):
    from ncps.cells.ltc import ltc_step

    v, c, S, C = h0, c0, [], []
    for t in range(x.shape[1]):
        z = u[:, t] @ lp["input_w"].T + lp["input_b"] + v @ lp["recurrent_w"].T
        i, ig, fg, og = mx.split(z, 4, axis=-1)
        c = c * mx.sigmoid(fg + 1.0) + mx.tanh(i) * mx.sigmoid(ig)
        v = ltc_step(x[:, t], mx.tanh(c) * mx.sigmoid(og), dt[:, t : t + 1], p, K, eps)
        S.append(v)
        C.append(c)
    return mx.stack(S, axis=1), mx.stack(C, axis=1)


def make_mixed_case(wiring, I, B, T, F=None, seed=0, zero_dt=()):
    x, h0, dt, p = make_case(wiring, I=I, B=B, T=T, seed=seed, zero_dt=zero_dt)
    N, F = h0.shape[1], I if F is None else F
    rng = np.random.default_rng(seed + 100)
    lp = {
        "input_w": mx.array(rng.normal(scale=0.5, size=(4 * N, F)).astype(np.float32)),
        "input_b": mx.array(rng.uniform(-0.3, 0.3, size=(4 * N,)).astype(np.float32)),
        "recurrent_w": mx.array(rng.normal(scale=0.4, size=(4 * N, N)).astype(np.float32)),
    }
    u = mx.array(rng.normal(size=(B, T, F)).astype(np.float32))
    c0 = mx.array(rng.normal(scale=0.5, size=(B, N)).astype(np.float32))
    return x, h0, c0, dt, p, u, lp


def mixed_args(x, h0, c0, dt, p, u, lp):
    return [x, h0, dt] + [p[k] for k in SOLVER_PARAMS] + [u] + [lp[k] for k in fused.LSTM_PARAMS] + [c0]


def mixed_loss(fn, Rs, Rc, K, eps=1e-8):
    def loss(*a):
        p = dict(zip(SOLVER_PARAMS, a[3:16]))
        lp = dict(zip(fused.LSTM_PARAMS, a[17:20]))
        s, c = fn(a[0], a[1], a[20], a[2], p, a[16], lp, K, eps)
        return (s * Rs).sum() + (c * Rc).sum()

    return loss


def check_mixed(case, K, eps=1e-8):
    args = mixed_args(*case)
    s, c = fused.ltc_mixed_sequence(*case[:5], case[5], case[6], K, eps)
    s_r, c_r = ref_mixed(*case, K, eps)
    assert s.dtype == c.dtype == mx.float32
    np.testing.assert_allclose(np.array(s), np.array(s_r), atol=1e-5, rtol=0)
    np.testing.assert_allclose(np.array(c), np.array(c_r), atol=1e-5, rtol=0)
    rng = np.random.default_rng(7)
    Rs = mx.array(rng.normal(size=s.shape).astype(np.float32))
    Rc = mx.array(rng.normal(size=c.shape).astype(np.float32))
    argn = list(range(len(args)))
    ga = mx.grad(mixed_loss(fused.ltc_mixed_sequence, Rs, Rc, K, eps), argnums=argn)(*args)
    gb = mx.grad(mixed_loss(lambda *a: ref_mixed(*a[:7], a[7], a[8]), Rs, Rc, K, eps), argnums=argn)(*args)
    for name, a, b in zip(MIXED_ARGS, ga, gb):
        if name in MASKS:
            assert not np.any(np.array(a)), name
            continue
        a, b = np.array(a), np.array(b)
        assert a.shape == b.shape and np.all(np.isfinite(a)), name
        err = np.abs(a - b).max() if a.size else 0.0
        assert err <= 1e-4 * max(1.0, np.abs(b).max() if b.size else 0.0), f"{name}: max err {err:.3g}"
    return ga


@pytest.mark.parametrize("kind,K", [("fc", 6), ("ncp", 1), ("random", 3)])
def test_mixed_matches_reference(kind, K):
    case = make_mixed_case(WIRINGS[kind](), I=4, B=3, T=5, seed=len(kind) + K, zero_dt=[(1, 2), (0, 4), (2, 0)])
    check_mixed(case, K)


@pytest.mark.parametrize(
    "B,T,F", [(1, 1, 2), (12, 3, 5), (40, 4, 3)]
)  # 1 lane; 8-lane tiles; 3 16-lane tiles (2 threads)
def test_mixed_sizes_lstm_width_and_determinism(B, T, F):
    case = make_mixed_case(W.Random(9, sparsity_level=0.4), I=4, B=B, T=T, F=F, seed=B, zero_dt=[(B - 1, T - 1)])
    ga = check_mixed(case, 3)
    rng = np.random.default_rng(7)
    s = fused.ltc_mixed_sequence(*case[:5], case[5], case[6], 3)[0]
    Rs = mx.array(rng.normal(size=s.shape).astype(np.float32))
    Rc = mx.array(rng.normal(size=s.shape).astype(np.float32))
    gb = mx.grad(mixed_loss(fused.ltc_mixed_sequence, Rs, Rc, 3), argnums=list(range(21)))(*mixed_args(*case))
    for a, b in zip(ga, gb):  # the same call gives bit-identical gradients
        np.testing.assert_array_equal(np.array(a), np.array(b))


def test_mixed_dense_large_and_frozen_steps():
    # N=100 dense with K=6: the backward recomputes sigmoids in the adjoint (too many to cache).
    case = list(make_mixed_case(W.FullyConnected(100), I=2, B=5, T=2, seed=3))
    dt = np.array(case[3])
    dt[:, 0] = 0.0  # every sample frozen at step 0: the state becomes the LSTM output
    dt[1, 1] = 0.0
    case[3] = mx.array(dt)
    ga = check_mixed(tuple(case), 6)
    gdt = np.array(ga[2])
    assert np.all(gdt[:, 0] == 0) and gdt[1, 1] == 0 and np.all(gdt[[0, 2, 3, 4], 1] != 0)


def test_mixed_compile_grad_and_cse():
    case = make_mixed_case(W.AutoNCP(8, 2), I=3, B=4, T=4, seed=8)
    x, h0, c0, dt, p, u, lp = case

    def f(x, u):
        a = fused.ltc_mixed_sequence(x, h0, c0, dt, p, u, lp, 2)
        b = fused.ltc_mixed_sequence(x, h0, c0, dt, p, u, lp, 3)  # must not be merged with a
        return a[0], a[1], b[0], b[1]

    eager, comp = f(x, u), mx.compile(f)(x, u)
    # Not bit-equal everywhere: mx.compile fuses the element-wise ops around the primitive (the
    # wrapper's input mapping) into C++ that its CPU JIT compiles with g++ -O3, which contracts
    # a * b + c into an FMA where FMA is part of the baseline ISA (aarch64: found 1 ulp apart under
    # qemu by scripts/check_aarch64.sh), while the eager ops round twice. The primitive itself is
    # the same code in both; a merged or mis-ordered node would be off by far more than 1e-6.
    for a, b in zip(eager, comp):
        np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-6, atol=1e-7)
    assert np.abs(np.array(eager[0]) - np.array(eager[2])).max() > 1e-4
    loss = lambda x, u: sum(o.sum() for o in f(x, u))  # noqa: E731
    g_e = mx.grad(loss, argnums=[0, 1])(x, u)
    g_c = mx.compile(mx.grad(loss, argnums=[0, 1]))(x, u)
    for a, b in zip(g_e, g_c):
        np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-6, atol=1e-7)


def test_mixed_empty_half_and_transforms():
    x, h0, c0, dt, p, u, lp = make_mixed_case(W.FullyConnected(4), I=2, B=3, T=3, seed=0)
    s, c = fused.ltc_mixed_sequence(x[:, :0], h0, c0, dt[:, :0], p, u[:, :0], lp, stream=mx.cpu)
    assert s.shape == c.shape == (3, 0, 4)
    g = mx.grad(
        lambda h, c_: fused.ltc_mixed_sequence(x[:, :0], h, c_, dt[:, :0], p, u[:, :0], lp)[0].sum(), argnums=[0, 1]
    )(h0, c0)
    assert not np.any(np.array(g[0])) and not np.any(np.array(g[1]))

    # Half arrays in, half out (every input but dt half): the float32 result rounded once.
    def half(a):
        return a.astype(mx.float16)

    def widen(a):
        return a.astype(mx.float32)

    args16 = (half(x), half(h0), half(c0), dt, {k: half(v) for k, v in p.items()}, half(u))
    s16, c16 = fused.ltc_mixed_sequence(*args16, {k: half(v) for k, v in lp.items()})
    assert s16.dtype == c16.dtype == mx.float16
    wide = [widen(a) if isinstance(a, mx.array) else {k: widen(v) for k, v in a.items()} for a in args16]
    s32, c32 = fused.ltc_mixed_sequence(*wide, {k: widen(half(v)) for k, v in lp.items()})
    assert mx.array_equal(s16, s32.astype(mx.float16)).item() and mx.array_equal(c16, c32.astype(mx.float16)).item()
    with pytest.raises(RuntimeError, match="jvp"):
        mx.jvp(lambda x_: fused.ltc_mixed_sequence(x_, h0, c0, dt, p, u, lp)[0], [x], [mx.ones_like(x)])
    with pytest.raises(RuntimeError, match="vmap"):
        mx.vmap(lambda x_: fused.ltc_mixed_sequence(x_, h0, c0, dt, p, u, lp)[0])(mx.stack([x, x]))


def test_mixed_bad_shapes_raise_value_error():
    x, h0, c0, dt, p, u, lp = make_mixed_case(W.FullyConnected(6), I=3, B=4, T=5, F=2, seed=1)
    base = dict(x=x, h0=h0, c0=c0, dt=dt, lstm_input=u, **p, **lp)
    cases = [  # (name in the wrapper's message, name in the op's message, change)
        ("x", "x", dict(x=x[0])),
        ("h0", "h0", dict(h0=h0[:, :5])),
        ("c0", "c0", dict(c0=c0[:3])),
        ("dt", "dt", dict(dt=dt[:, :4])),
        ("sensory_w", "sensory_w", dict(sensory_w=p["sensory_w"][:2])),
        ("mask", "mask", dict(mask=p["mask"][None])),
        ("vleak", "vleak", dict(vleak=p["vleak"][:5])),
        ("lstm_input", "lstm_input", dict(lstm_input=u[:, :4])),
        ("lstm_input", "lstm_input", dict(lstm_input=u[0])),
        ("input_w", "lstm_input_w", dict(input_w=lp["input_w"][:, :1])),
        ("input_w", "lstm_input_w", dict(input_w=lp["input_w"][:20])),
        ("input_b", "lstm_input_b", dict(input_b=lp["input_b"][None])),
        ("recurrent_w", "lstm_recurrent_w", dict(recurrent_w=lp["recurrent_w"].T)),
    ]
    for wname, oname, change in cases:
        kw = dict(base, **change)
        q = {k: kw[k] for k in SOLVER_PARAMS}
        lq = {k: kw[k] for k in fused.LSTM_PARAMS}
        with pytest.raises(ValueError, match=rf"\bltc_mixed_sequence: {wname}\b"):
            fused.ltc_mixed_sequence(kw["x"], kw["h0"], kw["c0"], kw["dt"], q, kw["lstm_input"], lq)
        with pytest.raises(ValueError, match=rf"\bltc_mixed_sequence: {oname}\b"):
            kernels._ext.ltc_mixed_sequence(
                kw["x"],
                kw["h0"],
                kw["dt"],
                *(q[k] for k in SOLVER_PARAMS),
                kw["lstm_input"],
                *(lq[k] for k in fused.LSTM_PARAMS),
                kw["c0"],
                6,
                1e-8,
            )
    with pytest.raises(ValueError, match=r"recurrent_w must have shape \(4N, N\) = \(24, 6\), got \(6, 24\)"):
        fused.ltc_mixed_sequence(x, h0, c0, dt, p, u, dict(lp, recurrent_w=lp["recurrent_w"].T))
    with pytest.raises(ValueError, match="lstm is missing"):
        fused.ltc_mixed_sequence(x, h0, c0, dt, p, u, {k: v for k, v in lp.items() if k != "input_b"})
    with pytest.raises(TypeError, match="lstm must be a mapping"):
        fused.ltc_mixed_sequence(x, h0, c0, dt, p, u, [lp[k] for k in fused.LSTM_PARAMS])
    with pytest.raises(ValueError, match="ode_unfolds"):
        fused.ltc_mixed_sequence(x, h0, c0, dt, p, u, lp, 0)
    with pytest.raises(ValueError, match="params is missing"):
        fused.ltc_mixed_sequence(x, h0, c0, dt, {k: v for k, v in p.items() if k != "cm"}, u, lp)
    monkey = pytest.MonkeyPatch()
    monkey.setattr(fused, "_ext", None)
    try:
        with pytest.raises(RuntimeError, match="ncps._ext"):
            fused.ltc_mixed_sequence(x, h0, c0, dt, p, u, lp)
    finally:
        monkey.undo()
