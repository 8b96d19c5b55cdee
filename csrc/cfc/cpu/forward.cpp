// Forward kernel of the fused CfC sequence: the input half of the first layer, x_t W_x^T + b for
// all (t, b), is one GEMM before the loop (as is the LSTM's input product); the loop then adds
// h W_h^T, runs the backbone and the heads, and applies the closed-form update. The batch is
// independent along the recurrence, so chunks of it run the whole time loop on the common pool's
// threads without synchronising.
//
// Where the time goes (wired CfC(16, AutoNCP(64, 8)), batch 32, T 100, one thread, perf, after
// the changes below): ~59 % in the GEMM tiles (~81 MFLOP per call at about the core's FMA peak;
// ~6 % of it on the half-empty last vectors of the 136- and 88-wide head products), ~18 % in the
// heads' elementwise update (three transcendentals per neuron), ~7 % in the loop body around them
// (staging, dispatch), the rest outside the kernel: graph building in Python (~40 us per eager
// call, mostly the layer's own code), MLX's eval and thread hand-offs, packing the weights (~6 us).
// Of a ~590 us eager call, ~545 us is the kernel loop. The heads take several rows per vector
// where a row's last vector is at most half full (the 34-, 22- and 8-neuron layers end in 2-, 6-
// and 8-wide vectors: 4.1 vectors per row-step instead of 6), and write h' into the caller's
// states directly. Past the caches (B*T beyond ~12 000 row-steps, 1.35 KB of workspace each) the
// hoisted input product runs a block of steps ahead of its use instead of all at once. A forward
// that no vjp reads keeps its activations in a ring of one such block (problem.h): they are
// written and read back in cache, which took 15-30 % off a dense or mixed forward and ~30 % off a
// wired one at B 128-512, T 100 (issue 28's forward cliff). With one dt
// for the call, a backbone unit's time heads fold into one (weights.h: fold_time_heads).
// Python's share of an eager call: ~11 us in backends/cpu/cfc.py (6 of them creating the op in
// C++), ~20 us more in the layer's own code.
// Every per-step product starts from its bias inside the tile (no per-step bias copies), and a
// wired layer's [new state of the layer before, own state] input is one product over both
// arrays (gemm_nn2). The heads' elementwise pass runs columns outside and rows inside: row by
// row, a row's partial last vector was a masked load overlapping the stores just made for its
// previous vector, which waits for them to retire; that stall, and the divisions in tanh and the
// sigmoid, had made the heads a third of the wired forward (together -30 % wired, -8 % dense).
#include <algorithm>
#include <cstring>
#include <tuple>
#include <vector>

#include "cfc/cpu/chunks.h"
#include "cfc/cpu/elementwise.h"
#include "cfc/cpu/kernel.h"
#include "cfc/cpu/weights.h"
#include "common/convert.h"
#include "common/thread_pool.h"

namespace ncps::cfc::cpu {

// ---- forward ------------------------------------------------------------------------------------

template <>
void forward<NCPS_ISA_TAG>(const Plan& p, const std::vector<const float*>& in, const common::Sink& states,
                           const common::Sink& cells, float* ws) {
  const int B = p.B, T = p.T, I = p.I, N = p.N;
  const int64_t TB = static_cast<int64_t>(T) * B;
  const bool mixed = p.cfg.mixed;
  const int mode = p.cfg.mode, act = p.cfg.act;
  float* XT = ws + p.xt_off;
  float* DT = ws + p.dt_off;
  float* HH = ws + p.hh_off;
  float* HL = mixed ? ws + p.hl_off : nullptr;
  float* GT = mixed ? ws + p.gates_off : nullptr;
  float* CC = mixed ? ws + p.cc_off : nullptr;
  const float *x = in[0], *h0 = in[1], *dt = in[2];

  // Batch rows [b0, b1): x, dt, h0 (and c0) into the time-major workspace, and, after the loop,
  // the states (and cells) out of it; each thread moves its own rows.
  auto stage_in = [&](int b0, int b1) {
    for (int b = b0; b < b1; ++b)
      for (int t = 0; t < T; ++t) {
        copy_row(x + (static_cast<int64_t>(b) * T + t) * I, I, XT + (static_cast<int64_t>(t) * B + b) * I);
        DT[static_cast<int64_t>(t) * B + b] = dt[static_cast<int64_t>(b) * T + t];
      }
    std::copy_n(h0 + static_cast<int64_t>(b0) * N, static_cast<int64_t>(b1 - b0) * N,
                HH + static_cast<int64_t>(b0) * N);
    if (mixed)
      std::copy_n(in[p.c0] + static_cast<int64_t>(b0) * N, static_cast<int64_t>(b1 - b0) * N,
                  CC + static_cast<int64_t>(b0) * N);
  };
  // float32 states are written by the heads while the rows are in registers (no copy after the
  // loop); half states are rounded into place after each step (save_step), the cells after the
  // loop from the workspace.
  float* const states32 = states.st == common::Storage::f32 ? static_cast<float*>(states.data) : nullptr;
  auto stage_out = [&](int b0, int b1) {
    if (!mixed) return;
    for (int b = b0; b < b1; ++b)
      for (int t = 0; t < T; ++t) {
        const int64_t src = (static_cast<int64_t>(t + 1) * B + b) * N, dst = (static_cast<int64_t>(b) * T + t) * N;
        common::put(cells, dst, CC + src, N);
      }
  };
  // A half model's saved copies (problem.h: Plan::act): rows [rw, rw + nb) of the working array at
  // `work` (ld floats a row) rounded into rows [r, r + nb) of the copy at `sav`.
  const common::Sink act_sink{nullptr, p.act, states.bf16_insn};
  auto save_rows = [&](int64_t work, int64_t sav, int64_t ld, int64_t rw, int64_t r, int nb) {
    common::Sink to = act_sink;
    to.data = ws + sav;
    common::put(to, r * ld, ws + work + rw * ld, nb * ld);
  };
  // After step t of rows [b0, b0 + nb): half states, and the copies of the step's activations.
  auto save_step = [&](int t, int b0, int nb, int64_t rw, int64_t rh1) {
    const int64_t r = static_cast<int64_t>(t) * B + b0;
    if (states32 == nullptr)
      for (int b = 0; b < nb; ++b)
        common::put(states, (static_cast<int64_t>(b0 + b) * T + t) * N, HH + (rh1 + b) * N, N);
    if (!p.copies()) return;
    save_rows(p.hh_off, p.hh_sav, N, rh1, r + B, nb);
    if (mixed) {
      save_rows(p.hl_off, p.hl_sav, N, rw, r, nb);
      save_rows(p.gates_off, p.gates_sav, 4 * N, rw, r, nb);
    }
    for (const Unit& U : p.units) {
      for (size_t l = 0; l < U.widths.size(); ++l) {
        save_rows(U.a_off[l], U.a_sav[l], U.widths[l], rw, r, nb);
        save_rows(U.z_off[l], U.z_sav[l], U.widths[l], rw, r, nb);
      }
      save_rows(U.heads_off, U.heads_sav, U.hs, rw, r, nb);
    }
  };

  // Tiny calls (a streaming step) use the weights as they are; otherwise transposed copies.
  const bool pack = TB >= 8;
  float dt_value = 0.0f;  // one dt for the whole call: the time heads fold (weights.h: fold_time_heads)
  const bool fold = pack && fold_time_heads(p, dt, h0, dt_value);
  std::vector<UnitW> uw = make_weights(p, in, pack, /*backward=*/false, fold ? &dt_value : nullptr);
  Lin lwx, lwh;
  if (mixed) {
    std::tie(lwx, lwh) = lstm_weights(p, in);
    if (pack) {
      lwx.pack();
      lwh.pack();
    }
  }
  const double flops = step_flops(p) * TB;

  // Hoisted: the x half of unit 0's first layer (+ bias), and the LSTM's input product, for rows
  // [r0, r0 + rows) of the (T*B) x . matrices: one big product in the serial case, the thread's
  // own rows of every step (before its time loop) in the parallel one.
  const Unit& U0 = p.units[0];
  const Lin& F0 = uw[0].first();
  const float* F0b = uw[0].first_bias();
  float* P0 = U0.widths.empty() ? ws + U0.heads_off : ws + U0.a_off[0];
  const int64_t ld0 = U0.widths.empty() ? U0.hs : U0.widths[0];
  auto hoist = [&](int64_t rx, int64_t rw, int rows) {  // rows from XT's row rx into slot row rw
    F0.fwd_bias(rows, XT + rx * I, I, I, nullptr, 0, 0, 0, F0b, P0 + rw * ld0, ld0);
    if (mixed) lwx.fwd_bias(rows, XT + rx * I, I, I, nullptr, 0, 0, 0, in[p.lb], GT + rw * 4 * N, 4 * N);
  };
  const int nt = common::threads_for(B, flops, kMinParallelFlops);

  auto run_tile = [&](int b0, int b1) {
    const int nb = b1 - b0;
    stage_in(b0, b1);
    if (p.copies()) save_rows(p.hh_off, p.hh_sav, N, b0, b0, nb);  // h0
    // The hoisted product runs just ahead of the steps that read it, a block of steps (about 256
    // rows, contiguous when the tile is the whole batch) at a time: done for all T steps before
    // the loop, it wrote 0.54 KB per row-step (wired CfC(16, AutoNCP(64, 8))), which the loop read
    // back from memory once B*T was past the caches (the forward's part of issue 28's cliff).
    // A forward-only plan's ring holds exactly one such block (problem.h).
    const int hoist_steps = nb == B ? hoist_block(B, T) : 1;
    for (int t = 0; t < T; ++t) {
      const int64_t r = static_cast<int64_t>(t) * B + b0;  // first row of the tile at step t
      // ... and its rows in the per-step activations and in the hidden states (rings or not)
      const int64_t rw = static_cast<int64_t>(t % p.ws_steps) * B + b0;
      const int64_t rh = static_cast<int64_t>(t % p.hh_steps) * B + b0;
      const int64_t rh1 = static_cast<int64_t>((t + 1) % p.hh_steps) * B + b0;
      if (t % hoist_steps == 0) hoist(r, rw, nb == B ? std::min(hoist_steps, T - t) * B : nb);
      const float* dtr = DT + r;
      if (mixed) {
        float* G = GT + rw * 4 * N;
        lwh.fwd(nb, HH + rh * N, N, 0, N, G, 4 * N, true);
        lstm_fwd(nb, N, G, CC + r * N, CC + (r + B) * N, HL + rw * N);
      }
      const float* hin_base = mixed ? HL + rw * N : HH + rh * N;
      float* hout_base = HH + rh1 * N;
      for (size_t u = 0; u < p.units.size(); ++u) {
        const Unit& U = p.units[u];
        const UnitW& w = uw[u];
        const Lin& F = w.first();
        float* C;
        int64_t ldc;
        if (U.widths.empty()) {
          C = ws + U.heads_off + rw * U.hs;
          ldc = U.hs;
        } else {
          C = ws + U.a_off[0] + rw * U.widths[0];
          ldc = U.widths[0];
        }
        if (u > 0)  // [new state of the unit before, own state] in one product, bias included
          F.fwd_bias(nb, hout_base + p.units[u - 1].off, N, U.in, hin_base + U.off, N, U.n, 0, w.first_bias(), C, ldc);
        else  // unit 0's input half (and bias) was hoisted
          F.fwd(nb, hin_base + U.off, N, U.in, U.n, C, ldc, true);
        const float* zlast = nullptr;
        int wlast = 0;
        for (size_t l = 0; l < U.widths.size(); ++l) {
          const int wl = U.widths[l];
          float* a = ws + U.a_off[l] + rw * wl;
          float* z = ws + U.z_off[l] + rw * wl;
          if (l > 0) w.bb[l].fwd_bias(nb, zlast, wlast, wlast, nullptr, 0, 0, 0, w.bbias[l], a, wl);
          act_rows(act, nb, wl, a, z);
          zlast = z;
          wlast = wl;
        }
        float* Hc = ws + U.heads_off + rw * U.hs;
        if (!U.widths.empty()) w.heads.fwd_bias(nb, zlast, wlast, wlast, nullptr, 0, 0, 0, w.hbias.data(), Hc, U.hs);
        // The second copy of h' goes to float32 states, else again into the workspace (save_step rounds it).
        float* out2 = states32 ? states32 + (static_cast<int64_t>(b0) * T + t) * N + U.off : hout_base + U.off;
        heads_fwd(mode, fold, nb, U.n, Hc, U.hs, dtr, hout_base + U.off, N, out2,
                  states32 ? static_cast<int64_t>(T) * N : N, w.w_tau, w.A);
      }
      save_step(t, b0, nb, rw, rh1);
    }
    stage_out(b0, b1);
  };
  run_batch_chunks(B, nt, batch_chunks(B, nt), [&](int, int b0, int b1) { run_tile(b0, b1); });
}

}  // namespace ncps::cfc::cpu
