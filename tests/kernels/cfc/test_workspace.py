"""The fused CfC's big per-call buffers (the forward's workspace, the backward's scratch).

They come from a pool in the extension (csrc/cfc/primitives.cpp) rather than straight from MLX's
allocator, whose CPU cache keeps only 32 MiB: a bigger workspace was mmapped afresh and
page-faulted in on every call, which doubled the cost per row-step past B*T ~ 14 000 (issue 28).
These tests check that pooled buffers never change a result (a reused buffer holds the previous
call's values, so a kernel that read something it had not written would differ) and, on Linux,
that a call at a large shape no longer faults its workspace in.
"""

import resource
import sys

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from mlx.utils import tree_flatten

from ncps import CfC, kernels
from ncps.wirings import AutoNCP

pytestmark = pytest.mark.skipif(not kernels.extension_available(), reason="ncps._ext is not built")

# Workspace floats per row-step of CfC(16, 64) with the default backbone (128 x 1): x 16, dt 1,
# state 64, backbone pre-/post-activation 2 x 128, heads 4 x 64 (csrc/cfc/problem.cpp).
DENSE_WS_FLOATS = 16 + 1 + 64 + 2 * 128 + 4 * 64
# The backward's scratch per row-step: dL/d dt 1, heads 4 x 64, backbone 128.
DENSE_SCRATCH_FLOATS = 1 + 4 * 64 + 128

MODELS = {
    "dense": lambda: CfC(16, 64),
    "wired": lambda: CfC(16, AutoNCP(64, 8)),
    "mixed": lambda: CfC(16, 64, mixed_memory=True),
}


def grads_of(model, x, R):
    """The loss and every gradient of sum(out * R), built lazily (evaluate them later)."""

    def loss(m, inp):
        return (m(inp)[0] * R).sum()

    value, grads = nn.value_and_grad(model, loss)(model, x)
    dx = mx.grad(lambda inp: loss(model, inp))(x)
    return [value, dx] + [v for _, v in tree_flatten(grads)]


def as_numpy(arrays):
    mx.eval(arrays)
    return [np.array(a) for a in arrays]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_pooled_buffers_give_identical_results(name):
    # B*T = 1 280 and 1 200 rows: every workspace and scratch is over the pool's 1 MiB floor, and
    # the second shape's fit within an eighth of the first's (the pool may hand over the bigger one).
    with kernels.use("fused"):
        mx.random.seed(0)
        model = MODELS[name]()
        mx.eval(model.parameters())
        shapes = [(32, 40), (30, 40), (32, 40)]
        xs = [mx.random.normal((B, T, 16)) for B, T in shapes]
        Rs = [mx.random.normal((B, T, model(x)[0].shape[-1])) for (B, T), x in zip(shapes, xs)]
        mx.eval(xs, Rs)
        # One at a time: each call's buffers go back to the pool before the next call takes them.
        alone = [as_numpy(grads_of(model, x, R)) for x, R in zip(xs, Rs)]
        # All in one graph: three workspaces and scratches alive at once, none handed out twice.
        together = as_numpy(sum((grads_of(model, x, R) for x, R in zip(xs, Rs)), []))
        # And again one at a time in the reverse order (other buffers, other previous contents).
        reverse = [as_numpy(grads_of(model, x, R)) for x, R in zip(xs[::-1], Rs[::-1])][::-1]
    n = len(alone[0])
    for i in range(len(shapes)):
        for a, b, c in zip(alone[i], together[i * n : (i + 1) * n], reverse[i]):
            assert np.array_equal(a, b) and np.array_equal(a, c)


def minor_faults(fn, calls):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(calls):
        fn()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / calls


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="page-fault counts as Linux reports them")
def test_large_workspace_is_not_faulted_in_every_call():
    # B 256, T 100: a 61 MB workspace and a 39 MB scratch, both over MLX's 32 MiB CPU cache; they
    # used to be mmapped afresh and faulted in page by page on every call (~15 000 faults per
    # forward). MLX's own outputs (states, cotangent, dx: ~1 600 pages each) may still fault when
    # its cache is full, hence the bound of a quarter of the pooled pages.
    B, T = 256, 100
    page = resource.getpagesize()
    with kernels.use("fused"):
        mx.random.seed(0)
        model = CfC(16, 64)
        mx.eval(model.parameters())
        x = mx.random.normal((B, T, 16))
        mx.eval(x)
        value_and_grad = nn.value_and_grad(model, lambda m, inp: m(inp)[0].sum())

        def forward():
            mx.eval(model(x))

        def forward_backward():
            mx.eval(value_and_grad(model, x))

        for fn in (forward, forward_backward):
            fn()
            fn()
        ws_pages = B * T * DENSE_WS_FLOATS * 4 / page
        scratch_pages = B * T * DENSE_SCRATCH_FLOATS * 4 / page
        assert minor_faults(forward, 3) < ws_pages / 4
        assert minor_faults(forward_backward, 3) < (ws_pages + scratch_pages) / 4


def test_clear_cache_releases_the_idle_workspaces():
    """``mx.clear_cache()`` does not reach the pool; ``ncps.kernels.clear_cache()`` empties it: a
    large forward under a gradient leaves its workspace idle in the pool, the first release frees
    at least that much, a second one nothing."""
    model = CfC(16, 64)
    B, T = 64, 100

    def forward_with_workspace():  # a forward-only call keeps a ring of a few steps, not T
        y, _ = mx.vjp(lambda x: [model(x)[0]], [mx.random.normal((B, T, 16))], [mx.zeros((B, T, 64))])
        mx.eval(y)

    forward_with_workspace()
    kernels.clear_cache()
    forward_with_workspace()
    mx.eval(model.parameters())
    freed = kernels.clear_cache()
    assert freed >= B * T * DENSE_WS_FLOATS * 4
    assert kernels.clear_cache() == 0
