"""The dtype rules every layer, cell and kernel hook shares (README "Precision").

A model's dtype is that of its floating parameters (float32 unless ``set_dtype`` changed it). A
call computes in the *compute dtype*: MLX's promotion of the input ``x``, the given state and the
model's dtype (``mx.result_type``), as ``mlx.nn`` layers do; its outputs and states have that
dtype. Elapsed times never take part: they are float32 arrays of every path, and the reference
path rounds them to the compute dtype where it multiplies with them. Integer and boolean inputs
and states, and float64 ones, are cast to the model's dtype first: integers carry no precision of
their own, and float64 is no compute dtype here (MLX's GPU has none, the fused kernels compute in
float32), so a float64 numpy array does not silently double the work or leave the GPU.
"""

from __future__ import annotations

from typing import Any

import mlx.core as mx

# What ``ncps.training.fit(precision=...)`` accepts, and the compute dtype of each.
PRECISIONS = {"fp32": mx.float32, "bf16": mx.bfloat16, "fp16": mx.float16}


def model_dtype(module: Any) -> mx.Dtype:
    """The dtype of the first floating parameter of ``module`` (an ``nn.Module``, a dict or list
    of them; float32 when it has none). Walks the tree only until that parameter: cheap per call."""

    def first(c: Any) -> mx.Dtype | None:
        items = c.items() if isinstance(c, dict) else enumerate(c) if isinstance(c, (list, tuple)) else ()
        for k, v in items:
            if isinstance(k, str) and k.startswith("_"):  # private arrays are no parameters
                continue
            if isinstance(v, mx.array):
                if mx.issubdtype(v.dtype, mx.floating):
                    return v.dtype
            elif isinstance(v, (dict, list, tuple)):
                found = first(v)
                if found is not None:
                    return found
        return None

    return first(module) or mx.float32


def as_compute_input(a: mx.array, dtype: mx.Dtype) -> mx.array:
    """``a`` (an input or state) cast to the model's ``dtype`` when it is integer, boolean or
    float64; any other floating array as it is (promotion decides)."""
    if a.dtype == mx.float64 or not mx.issubdtype(a.dtype, mx.floating):
        return a.astype(dtype)
    return a


def compute_dtype(*dtypes_or_arrays: Any) -> mx.Dtype:
    """MLX's promotion of the given arrays and dtypes (None entries skipped)."""
    return mx.result_type(*(a for a in dtypes_or_arrays if a is not None))


def cast(a: mx.array, dtype: mx.Dtype) -> mx.array:
    """``a`` as ``dtype``, without a graph node when it already is."""
    return a if a.dtype == dtype else a.astype(dtype)
