"""Export to dependency-free C99: ``<name>.h`` and ``<name>.c`` for microcontrollers.

The generated step is batch 1 and one time step::

    void <name>_reset(float *state);                                  /* state <- 0 */
    void <name>_step(const float *x, float dt, float *state, float *y);

``x`` holds ``<NAME>_INPUTS`` floats, ``state`` ``<NAME>_STATE_SIZE`` (with mixed memory the LSTM's
``h`` then ``c``), ``y`` ``<NAME>_OUTPUTS`` (the layer's output at this step: readout, then the
projection). ``dt`` is the elapsed time (CfC timespan, LTC elapsed time); as in the layers, a
negative, NaN or infinite ``dt`` turns the state into NaN and ``dt = 0`` leaves an LTC state
unchanged.

Weights are ``static const float`` arrays (flash on a microcontroller); sparse wirings are stored
as compressed rows (one row per postsynaptic neuron), so memory grows with the synapses, not with
units². Scratch vectors live on the stack with sizes fixed at generation; there is no ``malloc``,
no mutable global and no header other than ``<math.h>``. The arithmetic follows the reference
path of :mod:`ncps.cells` operation for operation (sums in a different order: agreement to float32
rounding, ~1e-6).
"""

from __future__ import annotations

import os
import re

import numpy as np

from ..persistence import atomic_write
from ._params import CfCSpec, CTGRUSpec, CTRNNSpec, Dense, DirectionSpec, LTCSpec, describe, extract

_ACT_C = {
    "lecun_tanh": "1.7159f * tanhf(0.666f * v)",
    "tanh": "tanhf(v)",
    "relu": "v > 0.0f ? v : 0.0f",
    "silu": "v / (1.0f + expf(-v))",
    "gelu": "0.5f * v * (1.0f + erff(v * 0.70710678118654752f))",
    "sigmoid": "1.0f / (1.0f + expf(-v))",
    "softplus": "v > 0.0f ? v + log1pf(expf(-v)) : log1pf(expf(v))",
}


def _f(v: float) -> str:
    """A float32 value as a C literal that reads back bit for bit."""
    v = float(np.float32(v))
    if np.isnan(v):
        return "NAN"
    if np.isinf(v):
        return "INFINITY" if v > 0 else "-INFINITY"
    s = f"{v:.9g}"
    if not any(c in s for c in ".e"):
        s += ".0"
    return s + "f"


class _Writer:
    """Accumulates the constant tables, helper functions and step functions of one ``.c`` file."""

    def __init__(self, name: str):
        self.name = name
        self.tables: list[str] = []
        self.helpers: dict[str, str] = {}
        self.functions: list[str] = []
        self.flash_floats = 0
        self.index_type = "unsigned short"
        self._count = 0

    def table(self, stem: str, values: np.ndarray, ctype: str = "float") -> str:
        """A ``static const`` array; returns its C name."""
        self._count += 1
        if stem.startswith(self.name + "_"):
            stem = stem[len(self.name) + 1 :]
        cname = f"{self.name}_{stem}{self._count}"
        flat = np.asarray(values).reshape(-1)
        if flat.size == 0:  # C99 has no empty arrays; an unused element keeps the name valid
            flat = np.zeros(1, dtype=flat.dtype)
        if ctype == "float":
            self.flash_floats += flat.size
            items = [_f(v) for v in flat]
        else:
            items = [str(int(v)) for v in flat]
        lines = [", ".join(items[i : i + 8]) for i in range(0, len(items), 8)]
        body = ",\n    ".join(lines)
        self.tables.append(f"static const {ctype} {cname}[{flat.size}] = {{\n    {body}\n}};")
        return cname

    def helper(self, key: str) -> str:
        """Emit a helper function once; returns its C name."""
        n = self.name
        fname = f"{n}_{key}"
        if key in self.helpers:
            return fname
        if key == "sigmoid":
            code = f"static float {fname}(float v)\n{{\n    return 1.0f / (1.0f + expf(-v));\n}}"
        elif key.startswith("act_"):
            code = f"static float {fname}(float v)\n{{\n    return {_ACT_C[key[4:]]};\n}}"
        elif key == "dense":
            code = (
                f"/* y = W x + b: W row-major (n_out, n_in); b may be 0 */\n"
                f"static void {fname}(const float *w, const float *b, const float *x, int n_out, int n_in, float *y)\n"
                "{\n    int o, i;\n    for (o = 0; o < n_out; ++o) {\n"
                "        const float *row = w + (long)o * n_in;\n        float acc = b ? b[o] : 0.0f;\n"
                "        for (i = 0; i < n_in; ++i) acc += row[i] * x[i];\n        y[o] = acc;\n    }\n}"
            )
        elif key == "csr":
            it = self.index_type
            code = (
                f"/* y = W x + b for a sparse W in compressed rows: row o holds w[rp[o] .. rp[o+1]) at columns col */\n"
                f"static void {fname}(const {it} *rp, const {it} *col, const float *w, const float *b, "
                "const float *x, int n_out, float *y)\n"
                "{\n    int o, e;\n    for (o = 0; o < n_out; ++o) {\n        float acc = b ? b[o] : 0.0f;\n"
                "        for (e = rp[o]; e < rp[o + 1]; ++e) acc += w[e] * x[col[e]];\n        y[o] = acc;\n    }\n}"
            )
        else:
            raise KeyError(key)
        self.helpers[key] = code
        return fname

    def linear(self, layer: Dense, x: str, y: str, stem: str) -> str:
        """A C statement computing ``y = layer(x)`` (compressed rows when the layer is sparse)."""
        bias = self.table(f"{stem}_b", layer.bias) if layer.bias is not None else "0"
        if layer.mask is None:
            w = self.table(f"{stem}_w", layer.weight)
            return f"{self.helper('dense')}({w}, {bias}, {x}, {layer.out_features}, {layer.in_features}, {y});"
        rows, cols = np.nonzero(layer.mask)  # row-major order: grouped by output row
        rp = np.zeros(layer.out_features + 1, dtype=np.int64)
        np.add.at(rp, rows + 1, 1)
        rp = np.cumsum(rp)
        t = self.index_type
        rp_name = self.table(f"{stem}_rp", rp, t)
        col_name = self.table(f"{stem}_col", cols, t)
        w = self.table(f"{stem}_w", layer.weight[rows, cols])
        return f"{self.helper('csr')}({rp_name}, {col_name}, {w}, {bias}, {x}, {layer.out_features}, {y});"


def _cfc_function(wr: _Writer, c: CfCSpec, fname: str) -> None:
    """``static void fname(const float *x, float dt, float *h)``: h <- CfC step (in place)."""
    I, H = c.input_size, c.hidden
    body = [f"float z[{I + H}];", "float ff1[" + str(H) + "];"]
    if c.mode != "pure":
        body.append(f"float ff2[{H}], ta[{H}], tb[{H}];")
    widths = [b.out_features for b in c.backbone]
    for l, w in enumerate(widths):
        body.append(f"float bb{l}[{w}];")
    body += ["int i;", f"for (i = 0; i < {I}; ++i) z[i] = x[i];", f"for (i = 0; i < {H}; ++i) z[{I} + i] = h[i];"]
    zin = "z"
    if widths:
        act = wr.helper(f"act_{c.activation}")
    for l, layer in enumerate(c.backbone):
        body.append(wr.linear(layer, zin, f"bb{l}", f"{fname}_bb{l}"))
        body.append(f"for (i = 0; i < {widths[l]}; ++i) bb{l}[i] = {act}(bb{l}[i]);")
        zin = f"bb{l}"
    body.append(wr.linear(c.ff1, zin, "ff1", f"{fname}_ff1"))
    if c.mode == "pure":
        wt, A = wr.table(f"{fname}_wtau", c.w_tau), wr.table(f"{fname}_A", c.A)
        body.append(
            f"for (i = 0; i < {H}; ++i)\n"
            f"    h[i] = -{A}[i] * expf(-dt * (fabsf({wt}[i]) + fabsf(ff1[i]))) * ff1[i] + {A}[i];"
        )
    else:
        sig = wr.helper("sigmoid")
        body += [
            wr.linear(c.ff2, zin, "ff2", f"{fname}_ff2"),
            wr.linear(c.time_a, zin, "ta", f"{fname}_ta"),
            wr.linear(c.time_b, zin, "tb", f"{fname}_tb"),
            f"for (i = 0; i < {H}; ++i) {{",
            "    float f1 = tanhf(ff1[i]), f2 = tanhf(ff2[i]);",
            f"    float g = {sig}(ta[i] * dt + tb[i]);",
            "    h[i] = f1 + g * f2;" if c.mode == "no_gate" else "    h[i] = f1 * (1.0f - g) + g * f2;",
            "}",
        ]
    wr.functions.append(_function(f"static void {fname}(const float *x, float dt, float *h)", body))


def _ltc_function(wr: _Writer, c: LTCSpec, fname: str) -> None:
    """``static void fname(const float *x, float dt, float *v)``: v <- LTC step (input mapping
    included); synapses stored per postsynaptic neuron (compressed rows)."""
    N, I, K, p = c.hidden, c.input_size, c.ode_unfolds, c.p
    sig = wr.helper("sigmoid")
    t = wr.index_type

    def synapses(prefix: str, stem: str) -> tuple[str, ...]:
        mask = p[f"{prefix}mask"]
        post, pre = np.nonzero(mask.T != 0)  # grouped by postsynaptic neuron
        rp = np.cumsum(np.concatenate([[0], np.bincount(post, minlength=N)]))
        names = [wr.table(f"{fname}_{stem}_rp", rp, t), wr.table(f"{fname}_{stem}_pre", pre, t)]
        for k in ("w", "sigma", "mu", "erev"):
            values = p[f"{prefix}{k}"][pre, post]
            if k == "w":
                values = values * mask[pre, post]  # ltc's w * sigmoid(...) * mask, mask folded in
            names.append(wr.table(f"{fname}_{stem}_{k}", values))
        return tuple(names)

    srp, spre, sw, ssig, smu, serev = synapses("sensory_", "s")
    rp, pre, w, sg, mu, erev = synapses("", "r")
    cm, gleak, leak = (wr.table(f"{fname}_{k}", v) for k, v in (("cm", p["cm"]), ("gl", p["gleak"]), ("lk", c.leak)))
    body = [f"float xm[{I}], num_s[{N}], den_s[{N}], v_new[{N}];", "float hstep;", "int i, e, u;"]
    mapped = "x[i]"
    if c.input_w is not None:
        mapped = f"{mapped} * {wr.table(f'{fname}_inw', c.input_w)}[i]"
    if c.input_b is not None:
        mapped = f"{mapped} + {wr.table(f'{fname}_inb', c.input_b)}[i]"
    body += [
        f"for (i = 0; i < {I}; ++i) xm[i] = {mapped};",
        "if (dt == 0.0f) return; /* no elapsed time: the state is unchanged */",
        f"for (i = 0; i < {N}; ++i) {{",
        "    float num = 0.0f, den = 0.0f;",
        f"    for (e = {srp}[i]; e < {srp}[i + 1]; ++e) {{",
        f"        float s = {sw}[e] * {sig}({ssig}[e] * (xm[{spre}[e]] - {smu}[e]));",
        f"        num += s * {serev}[e];",
        "        den += s;",
        "    }",
        "    num_s[i] = num;",
        "    den_s[i] = den;",
        "}",
        f"hstep = dt / {K}.0f;",
        f"for (u = 0; u < {K}; ++u) {{",
        f"    for (i = 0; i < {N}; ++i) {{",
        f"        float num = 0.0f, den = 0.0f, cm_t = {cm}[i] / hstep;",
        f"        for (e = {rp}[i]; e < {rp}[i + 1]; ++e) {{",
        f"            float a = {w}[e] * {sig}({sg}[e] * (v[{pre}[e]] - {mu}[e]));",
        f"            num += a * {erev}[e];",
        "            den += a;",
        "        }",
        f"        v_new[i] = (cm_t * v[i] + {leak}[i] + (num + num_s[i])) /",
        f"                   (cm_t + {gleak}[i] + (den + den_s[i]) + {_f(c.epsilon)});",
        "    }",
        f"    for (i = 0; i < {N}; ++i) v[i] = v_new[i];",
        "}",
    ]
    wr.functions.append(_function(f"static void {fname}(const float *x, float dt, float *v)", body))


def _ctrnn_function(wr: _Writer, c: CTRNNSpec, fname: str) -> None:
    H, K = c.hidden, c.ode_unfolds
    act = wr.helper(f"act_{c.activation}")
    decay = wr.table(f"{fname}_decay", c.decay)
    body = [
        f"float drive[{H}], rec[{H}], hstep = dt / {K}.0f;",
        "int i, u;",
        wr.linear(c.input_map, "x", "drive", f"{fname}_in"),
        f"for (u = 0; u < {K}; ++u) {{",
        "    " + wr.linear(c.recurrent_map, "h", "rec", f"{fname}_rec"),
        f"    for (i = 0; i < {H}; ++i) h[i] = h[i] + hstep * (-h[i] * {decay}[i] + {act}(drive[i] + rec[i]));",
        "}",
    ]
    wr.functions.append(_function(f"static void {fname}(const float *x, float dt, float *h)", body))


def _ctgru_function(wr: _Writer, c: CTGRUSpec, fname: str) -> None:
    I, H, M = c.input_size, c.hidden, c.timescales
    ln_tau, tau = wr.table(f"{fname}_lntau", c.ln_tau), wr.table(f"{fname}_tau", c.tau)
    body = [
        f"float z[{I + H}], r[{H * M}], s[{H * M}], q[{H}], decay[{M}];",
        "int i, k;",
        f"for (i = 0; i < {I}; ++i) z[i] = x[i];",
        f"for (i = 0; i < {H}; ++i) {{",
        "    float sum = 0.0f;",
        f"    for (k = 0; k < {M}; ++k) sum += tr[i * {M} + k];",
        f"    z[{I} + i] = sum;",
        "}",
        wr.linear(c.tau_r, "z", "r", f"{fname}_r"),
        wr.linear(c.tau_s, "z", "s", f"{fname}_s"),
        f"{fname}_scale(r, {ln_tau});",
        f"{fname}_scale(s, {ln_tau});",
        f"for (i = 0; i < {H}; ++i) {{ /* the retrieved trace replaces the sum in z */",
        "    float acc = 0.0f;",
        f"    for (k = 0; k < {M}; ++k) acc += r[i * {M} + k] * tr[i * {M} + k];",
        f"    z[{I} + i] = acc;",
        "}",
        wr.linear(c.detect, "z", "q", f"{fname}_q"),
        f"for (k = 0; k < {M}; ++k) decay[k] = expf(-dt / {tau}[k]);",
        f"for (i = 0; i < {H}; ++i) {{",
        "    float qi = tanhf(q[i]);",
        f"    for (k = 0; k < {M}; ++k) {{",
        f"        int j = i * {M} + k;",
        "        tr[j] = ((1.0f - s[j]) * tr[j] + s[j] * qi) * decay[k];",
        "    }",
        "}",
    ]
    scale = [
        "int i, k;",
        f"for (i = 0; i < {H}; ++i) {{ /* softmax over k of -(a - ln tau_k)^2 */",
        f"    float *row = a + i * {M}, mx = -INFINITY, sum = 0.0f;",
        f"    for (k = 0; k < {M}; ++k) {{",
        "        float d = row[k] - ln_tau[k];",
        "        row[k] = -(d * d);",
        "        if (row[k] > mx) mx = row[k];",
        "    }",
        f"    for (k = 0; k < {M}; ++k) {{",
        "        row[k] = expf(row[k] - mx);",
        "        sum += row[k];",
        "    }",
        f"    for (k = 0; k < {M}; ++k) row[k] /= sum;",
        "}",
    ]
    wr.functions.append(_function(f"static void {fname}_scale(float *a, const float *ln_tau)", scale))
    wr.functions.append(_function(f"static void {fname}(const float *x, float dt, float *tr)", body))


def _function(signature: str, body: list[str]) -> str:
    lines = [signature, "{"]
    for stmt in body:
        lines += ["    " + s for s in stmt.split("\n")]
    lines.append("}")
    return "\n".join(lines)


def _direction_step(wr: _Writer, d: DirectionSpec) -> list[str]:
    """The statements of ``<name>_step``'s body for one direction."""
    n, c = wr.name, d.cell
    N = d.state_size
    body: list[str] = []
    decl: list[str] = ["int i;"]
    if d.lstm is not None:
        sig = wr.helper("sigmoid")
        decl.append(f"float gates[{4 * N}], rec[{4 * N}];")
        body += [
            "/* mixed memory: the LSTM runs first and its h becomes the cell's state */",
            wr.linear(d.lstm.input_map, "x", "gates", "lstm_in"),
            wr.linear(d.lstm.recurrent_map, "state", "rec", "lstm_rec"),
            f"for (i = 0; i < {N}; ++i) {{",
            f"    float gi = gates[i] + rec[i], gig = gates[{N} + i] + rec[{N} + i];",
            f"    float gf = gates[{2 * N} + i] + rec[{2 * N} + i], go = gates[{3 * N} + i] + rec[{3 * N} + i];",
            f"    float c = state[{N} + i] * {sig}(gf + 1.0f) + tanhf(gi) * {sig}(gig);",
            f"    state[{N} + i] = c;",
            f"    state[i] = tanhf(c) * {sig}(go);",
            "}",
        ]
    if c.kind == "cfc":
        _cfc_function(wr, c, f"{n}_cfc")
        body.append(f"{n}_cfc(x, dt, state);")
        out, size = "state", (c.hidden if c.readout is None else c.readout)
    elif c.kind == "wired_cfc":
        off, inp = 0, "x"
        for l, layer in enumerate(c.layers):
            _cfc_function(wr, layer, f"{n}_layer{l}")
            body.append(f"{n}_layer{l}({inp}, dt, state + {off});")
            inp, off = f"state + {off}", off + layer.hidden
        size = c.layers[-1].hidden
        out = f"(state + {c.hidden - size})"
    elif c.kind == "ltc":
        _ltc_function(wr, c, f"{n}_ltc")
        body.append(f"{n}_ltc(x, dt, state);")
        size = c.motor
        if c.output_w is None and c.output_b is None:
            out = "state"
        else:
            decl.append(f"float mapped[{size}];")
            expr = "state[i]"
            if c.output_w is not None:
                expr = f"{expr} * {wr.table('outw', c.output_w)}[i]"
            if c.output_b is not None:
                expr = f"{expr} + {wr.table('outb', c.output_b)}[i]"
            body.append(f"for (i = 0; i < {size}; ++i) mapped[i] = {expr};")
            out = "mapped"
    elif c.kind == "ctrnn":
        _ctrnn_function(wr, c, f"{n}_ctrnn")
        body.append(f"{n}_ctrnn(x, dt, state);")
        out, size = "state", c.hidden
    elif c.kind == "ctgru":
        _ctgru_function(wr, c, f"{n}_ctgru")
        M = c.timescales
        decl.append(f"float visible[{c.hidden}];")
        body += [
            f"{n}_ctgru(x, dt, state);",
            f"for (i = 0; i < {c.hidden}; ++i) {{",
            "    int k;",
            "    visible[i] = 0.0f;",
            f"    for (k = 0; k < {M}; ++k) visible[i] += state[i * {M} + k];",
            "}",
        ]
        out, size = "visible", c.hidden
    else:  # pragma: no cover - extract() raises first
        raise NotImplementedError(c.kind)
    if d.proj is not None:
        body.append("/* the projection */")
        body.append(wr.linear(d.proj, out, "y", "proj"))
    else:
        body.append(f"for (i = 0; i < {size}; ++i) y[i] = {out}[i];")
    return decl + body


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def to_c(model, directory: str | os.PathLike, name: str = "policy") -> tuple[str, str]:
    """Write ``<directory>/<name>.h`` and ``<directory>/<name>.c`` (atomically) for ``model``.

    Args:
        model: an ncps sequence layer (``CfC``, ``LTC``, ``CTRNN``, ``CTGRU``, any wiring, mixed
            memory, ``proj_size``) or a bare cell, with its current parameters.
        directory: an existing folder.
        name: a C identifier; prefixes every symbol, upper-cased for the macros.

    Returns the paths ``(header, source)``. A bidirectional layer raises ``NotImplementedError``:
    its backward direction reads the sequence from its end, which a one-step function cannot see.
    The file is C99 (``gcc -std=c99 -Wall -Wextra -pedantic`` clean, also for Cortex-M4F).
    """
    if not isinstance(name, str) or not _IDENT.match(name):
        raise ValueError(f"name must be a C identifier, got {name!r}")
    spec = extract(model)
    if spec.bidirectional:
        raise NotImplementedError(
            f"C export of a bidirectional layer ({describe(spec)}): its backward direction needs the whole "
            "sequence (it starts at the last step), so it has no one-step form"
        )
    d = spec.forward
    wr = _Writer(name)
    largest = max(
        [d.state_size, d.cell.input_size]
        + [int(np.count_nonzero(v)) for v in _masks(d)]
        + [d.cell.hidden * getattr(d.cell, "timescales", 1)]
    )
    if largest > 65535:
        wr.index_type = "unsigned long"
    state_size = d.state_size * (2 if d.lstm is not None else 1)
    step_body = _direction_step(wr, d)
    up = name.upper()
    header = f"""/* {name}.h: generated by ncps.export.to_c from {describe(spec)}. C99, no dependencies. */
#ifndef {up}_H
#define {up}_H

#define {up}_INPUTS {spec.input_size}
#define {up}_OUTPUTS {d.output_size}
#define {up}_STATE_SIZE {state_size}

#ifdef __cplusplus
extern "C" {{
#endif

/* Zero the state (float[{up}_STATE_SIZE]). */
void {name}_reset(float *state);

/* One step of batch 1: x float[{up}_INPUTS], dt the elapsed time, state float[{up}_STATE_SIZE]
   (updated in place), y float[{up}_OUTPUTS] (the layer's output at this step). */
void {name}_step(const float *x, float dt, float *state, float *y);

#ifdef __cplusplus
}}
#endif

#endif /* {up}_H */
"""
    reset = _function(
        f"void {name}_reset(float *state)", ["int i;", f"for (i = 0; i < {state_size}; ++i) state[i] = 0.0f;"]
    )
    step = _function(
        f"void {name}_step(const float *x, float dt, float *state, float *y)",
        [
            "/* as the layers: a negative, NaN or infinite elapsed time gives a NaN state */",
            "if (!(dt >= 0.0f && dt < INFINITY)) dt = NAN;",
            *step_body,
        ],
    )
    source = "\n\n".join(
        [
            f"/* {name}.c: generated by ncps.export.to_c from {describe(spec)}.\n"
            f"   {wr.flash_floats} weights as static const float; no malloc, no mutable globals. */",
            f'#include "{name}.h"\n\n#include <math.h>',
            *wr.tables,
            *wr.helpers.values(),
            *wr.functions,
            reset,
            step,
        ]
    )
    directory = os.fspath(directory)
    h_path, c_path = os.path.join(directory, f"{name}.h"), os.path.join(directory, f"{name}.c")
    for path, text in ((h_path, header), (c_path, source + "\n")):
        atomic_write(path, lambda tmp, text=text: _write_text(tmp, text))
    return h_path, c_path


def _masks(d: DirectionSpec) -> list[np.ndarray]:
    c = d.cell
    if c.kind == "ltc":
        return [c.p["mask"], c.p["sensory_mask"]]
    layers = c.layers if c.kind == "wired_cfc" else [c] if c.kind == "cfc" else []
    return [l.ff1.mask for l in layers if l.ff1.mask is not None]


def _write_text(path: str, text: str) -> None:
    with open(path, "w", encoding="ascii") as f:
        f.write(text)


__all__ = ["to_c"]
