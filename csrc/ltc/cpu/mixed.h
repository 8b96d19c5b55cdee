// CPU kernels of the fused mixed-memory LTC sequence: forward (LTCMixedSequence) and BPTT
// (LTCMixedSequenceGrad). Built on sequence.h: same batch-lane tiles, same StepCtx / advance /
// StepAdjoint for the LTC part, same per-thread parameter accumulators.
//
// Every step t (official ncps mixed memory):
//   z   = b + W_x u_t + W_h v            (u_t: LSTM input, v: previous LTC state; z = [i, ig, fg, og])
//   c'  = c * sigmoid(fg + 1) + tanh(i) * sigmoid(ig)
//   h'  = tanh(c') * sigmoid(og)         (the LSTM output)
//   v'  = ltc_step(x_t, h', dt_t)        (lanes with dt <= 0 keep h')
// The input and recurrent projections run inside the kernel as one (4N x (F+N)) matrix
// [W_x | W_h] against the lane vectors [u_t; v], so the LSTM costs no MLX matmul at all.
//
// Forward outputs: the LTC states v (B, T, N) and the cell states c (B, T, N).
// Backward, step t in reverse: rebuild [u_t; v_{t-1}] and c_{t-1} from the stored outputs,
// recompute z, c', h', run the LTC step adjoint from h' (StepAdjoint), then the LSTM adjoint:
// dz, then [du_t; dv_{t-1}] = [W_x | W_h]^T dz, dc_{t-1} = dc' * sigmoid(fg + 1).
// The weight gradient d[W_x | W_h] = sum_{b,t} dz [u; v]^T is accumulated per thread: the dz and
// [u; v] lane vectors of kChunkSteps steps are buffered and contracted as one small GEMM over
// (steps x lanes), then added into double sums; chunks are summed in a fixed order, so the
// result is deterministic.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "ltc/cpu/sequence.h"

namespace ncps::ltc::cpu {
NCPS_ISA_BEGIN

using common::vsigmoid;
using common::vtanh;

// out[j] = (bias ? bias[j] : 0) + sum_m A[m * J + j] * u[m] for j < J: A is (M, J) row-major and
// u, out are lane vectors. Blocks of R outputs stay in registers; one load of u[m] feeds R FMAs.
template <int L>
NCPS_INLINE void gemv_lanes(const float* A, int M, int J, const vf<L>* u, const float* bias, vf<L>* out) {
  using V = vf<L>;
  constexpr int R = 8;
  int j = 0;
  for (; j + R <= J; j += R) {
    V acc[R];
    for (int r = 0; r < R; ++r) acc[r] = splat<L>(bias ? bias[j + r] : 0.0f);
    for (int m = 0; m < M; ++m) {
      const V um = u[m];
      const float* a = A + static_cast<int64_t>(m) * J + j;
      for (int r = 0; r < R; ++r) acc[r] += a[r] * um;
    }
    for (int r = 0; r < R; ++r) out[j + r] = acc[r];
  }
  for (; j < J; ++j) {
    V acc = splat<L>(bias ? bias[j] : 0.0f);
    for (int m = 0; m < M; ++m) acc += A[static_cast<int64_t>(m) * J + j] * u[m];
    out[j] = acc;
  }
}

inline int64_t mixed_work_units(const MixedProblem& m, int L) {
  const Problem& p = *m.ltc;
  const int64_t tiles = (p.B + L - 1) / L;
  return work_units(p, L) + tiles * L * static_cast<int64_t>(p.T) * 4 * p.N * (m.F + p.N + 4);
}

// One LSTM step for lanes: z = b + [W_x | W_h] u (u = [u_t; v] of F + N vectors), c (N) updated in
// place, hh (N) = the LSTM output.
template <int L>
NCPS_INLINE void lstm_step(const MixedProblem& m, const vf<L>* u, vf<L>* z, vf<L>* c, vf<L>* hh) {
  const int N = m.ltc->N;
  gemv_lanes<L>(m.Wt.data(), m.F + N, 4 * N, u, m.bias, z);
  for (int i = 0; i < N; ++i) {
    const vf<L> cn = c[i] * vsigmoid<L>(z[2 * N + i] + 1.0f) + vtanh<L>(z[i]) * vsigmoid<L>(z[N + i]);
    c[i] = cn;
    hh[i] = vtanh<L>(cn) * vsigmoid<L>(z[3 * N + i]);
  }
}

// ---------------------------------------------------------------------------------------------
// Forward: states and cells (B, T, N) for lanes [b0, b0 + L).
template <int L>
void mixed_forward_tile(const MixedProblem& m, int b0, float* states, float* cells) {
  using V = vf<L>;
  const Problem& p = *m.ltc;
  const int N = p.N, F = m.F;
  const int64_t row = static_cast<int64_t>(p.T) * N;
  lane_vector<V> u(static_cast<size_t>(F + N)), z(4 * static_cast<size_t>(N)), c(N), v(N), w(N), v0(N);
  StepCtx<L> ctx(p);
  gather_rows<L>(p.h0, N, p.B, b0, N, u.data() + F);
  gather_rows<L>(m.c0, N, p.B, b0, N, c.data());
  for (int t = 0; t < p.T; ++t) {
    gather_rows<L>(m.u + static_cast<int64_t>(t) * F, static_cast<int64_t>(p.T) * F, p.B, b0, F, u.data());
    lstm_step<L>(m, u.data(), z.data(), c.data(), v.data());
    ctx.prepare(p, b0, t);
    advance<L>(p, ctx, v, w, v0);
    std::copy(v.begin(), v.end(), u.begin() + F);
    scatter_rows<L>(v.data(), p.B, b0, N, states + static_cast<int64_t>(t) * N, row);
    scatter_rows<L>(c.data(), p.B, b0, N, cells + static_cast<int64_t>(t) * N, row);
  }
}

template <int L>
void mixed_forward_impl(const MixedProblem& m, float* states, float* cells) {
  const int tiles = (m.ltc->B + L - 1) / L;
  const int nt = common::threads_for(tiles, mixed_work_units(m, L), kMinParallelWork);
  common::parallel_chunks(nt, [&](int c) {
    const auto [t0, t1] = common::chunk_range(tiles, nt, c);
    for (int64_t tile = t0; tile < t1; ++tile) mixed_forward_tile<L>(m, static_cast<int>(tile) * L, states, cells);
  });
}

inline void mixed_forward(const MixedProblem& m, float* states, float* cells) {
  const Problem& p = *m.ltc;
  if (p.B == 0 || p.T == 0 || p.N == 0) return;
  with_lanes(p.B, [&]<int L>() { mixed_forward_impl<L>(m, states, cells); });
}

// ---------------------------------------------------------------------------------------------
// Backward.

// Steps of dz and [u; v] lane vectors buffered before they are contracted into the weight sums.
constexpr int kChunkSteps = 16;

// Per-chunk LSTM weight-gradient accumulator: dW (J x M) and db (J) as double sums of chunks.
template <int L>
struct LSTMAccum {
  using V = vf<L>;
  int J, M, n = 0;
  lane_vector<V> dz, u;  // kChunkSteps x J, kChunkSteps x M
  std::vector<double> dw, db;

  LSTMAccum(int J_, int M_)
      : J(J_),
        M(M_),
        dz(static_cast<size_t>(kChunkSteps) * J_),
        u(static_cast<size_t>(kChunkSteps) * M_),
        dw(static_cast<size_t>(J_) * M_, 0.0),
        db(static_cast<size_t>(J_), 0.0) {}

  void push(const V* dzs, const V* us) {
    std::copy(dzs, dzs + J, dz.begin() + static_cast<int64_t>(n) * J);
    std::copy(us, us + M, u.begin() + static_cast<int64_t>(n) * M);
    if (++n == kChunkSteps) flush();
  }

  // Sum of the lanes by register halving (a memcpy-based split would pin the accumulators to the stack).
  static NCPS_INLINE float reduce(V a) {
    if constexpr (L == 16) {
      const vf<8> b = __builtin_shufflevector(a, a, 0, 1, 2, 3, 4, 5, 6, 7) +
                      __builtin_shufflevector(a, a, 8, 9, 10, 11, 12, 13, 14, 15);
      return LSTMAccum<8>::reduce(b);
    } else if constexpr (L == 8) {
      const vf<4> b = __builtin_shufflevector(a, a, 0, 1, 2, 3) + __builtin_shufflevector(a, a, 4, 5, 6, 7);
      return LSTMAccum<4>::reduce(b);
    } else {
      static_assert(L == 4, "tiles have 4, 8 or 16 lanes");
      const vf<4> b = a + __builtin_shufflevector(a, a, 2, 3, 0, 1);
      return b[0] + b[1];
    }
  }

  // dw[j, m] += sum over buffered steps and lanes of dz[j] * u[m]; blocks of 4 x 4 in registers.
  void flush() {
    if (n == 0) return;
    const V* Z = dz.data();
    const V* U = u.data();
    int j = 0;
    for (; j + 4 <= J; j += 4) {
      int mm = 0;
      for (; mm + 4 <= M; mm += 4) {
        // 16 named accumulators: GCC spills a V[4][4] array to the stack.
        V a00 = splat<L>(0.0f), a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00, a12 = a00, a13 = a00, a20 = a00,
          a21 = a00, a22 = a00, a23 = a00, a30 = a00, a31 = a00, a32 = a00, a33 = a00;
        for (int s = 0; s < n; ++s) {
          const V* zs = Z + static_cast<int64_t>(s) * J + j;
          const V* us = U + static_cast<int64_t>(s) * M + mm;
          const V u0 = us[0], u1 = us[1], u2 = us[2], u3 = us[3];
          V z = zs[0];
          a00 += z * u0, a01 += z * u1, a02 += z * u2, a03 += z * u3;
          z = zs[1];
          a10 += z * u0, a11 += z * u1, a12 += z * u2, a13 += z * u3;
          z = zs[2];
          a20 += z * u0, a21 += z * u1, a22 += z * u2, a23 += z * u3;
          z = zs[3];
          a30 += z * u0, a31 += z * u1, a32 += z * u2, a33 += z * u3;
        }
        double* d = dw.data() + static_cast<size_t>(j) * M + mm;
        d[0] += reduce(a00), d[1] += reduce(a01), d[2] += reduce(a02), d[3] += reduce(a03);
        d += M;
        d[0] += reduce(a10), d[1] += reduce(a11), d[2] += reduce(a12), d[3] += reduce(a13);
        d += M;
        d[0] += reduce(a20), d[1] += reduce(a21), d[2] += reduce(a22), d[3] += reduce(a23);
        d += M;
        d[0] += reduce(a30), d[1] += reduce(a31), d[2] += reduce(a32), d[3] += reduce(a33);
      }
      for (; mm < M; ++mm) {
        for (int a = 0; a < 4; ++a) {
          V acc = splat<L>(0.0f);
          for (int s = 0; s < n; ++s)
            acc += Z[static_cast<int64_t>(s) * J + j + a] * U[static_cast<int64_t>(s) * M + mm];
          dw[static_cast<size_t>(j + a) * M + mm] += reduce(acc);
        }
      }
    }
    for (; j < J; ++j)  // J = 4N: never taken, kept for generality
      for (int q = 0; q < M; ++q) {
        V acc = splat<L>(0.0f);
        for (int s = 0; s < n; ++s) acc += Z[static_cast<int64_t>(s) * J + j] * U[static_cast<int64_t>(s) * M + q];
        dw[static_cast<size_t>(j) * M + q] += reduce(acc);
      }
    for (int q = 0; q < J; ++q) {
      V acc = splat<L>(0.0f);
      for (int s = 0; s < n; ++s) acc += Z[static_cast<int64_t>(s) * J + q];
      db[static_cast<size_t>(q)] += reduce(acc);
    }
    n = 0;
  }
};

template <int L, int A, bool CACHE_SIG>
void mixed_backward_tile(const MixedProblem& m, int b0, const float* states, const float* cells, const float* cot_s,
                         const float* cot_c, const Grads& g, const MixedGrads& mg, Accum<A>& acc, LSTMAccum<L>& lacc) {
  using V = vf<L>;
  const Problem& p = *m.ltc;
  const int N = p.N, T = p.T, F = m.F, M = F + N, J = 4 * N;
  const int64_t row = static_cast<int64_t>(T) * N;
  StepCtx<L> ctx(p);
  StepAdjoint<L, A, CACHE_SIG> adj(p);
  lane_vector<V> gv(N, splat<L>(0.0f)), gc(N, splat<L>(0.0f)), ct(N), u(M), z(J), dz(J), gu(M), cp(N), gt(N);
  for (int t = T - 1; t >= 0; --t) {
    if ((T - 1 - t) % kFlushSteps == kFlushSteps - 1) acc.flush();
    gather_rows<L>(cot_s + static_cast<int64_t>(t) * N, row, p.B, b0, N, ct.data());
    for (int i = 0; i < N; ++i) gv[i] += ct[i];
    gather_rows<L>(cot_c + static_cast<int64_t>(t) * N, row, p.B, b0, N, ct.data());
    for (int i = 0; i < N; ++i) gc[i] += ct[i];
    // Rebuild the step's inputs and recompute the LSTM.
    gather_rows<L>(m.u + static_cast<int64_t>(t) * F, static_cast<int64_t>(T) * F, p.B, b0, F, u.data());
    if (t > 0) {
      gather_rows<L>(states + static_cast<int64_t>(t - 1) * N, row, p.B, b0, N, u.data() + F);
      gather_rows<L>(cells + static_cast<int64_t>(t - 1) * N, row, p.B, b0, N, cp.data());
    } else {
      gather_rows<L>(p.h0, N, p.B, b0, N, u.data() + F);
      gather_rows<L>(m.c0, N, p.B, b0, N, cp.data());
    }
    gemv_lanes<L>(m.Wt.data(), M, J, u.data(), m.bias, z.data());
    V* hh = adj.start();
    for (int i = 0; i < N; ++i) {
      const V si = vsigmoid<L>(z[N + i]), ti = vtanh<L>(z[i]);
      const V sf = vsigmoid<L>(z[2 * N + i] + 1.0f), so = vsigmoid<L>(z[3 * N + i]);
      const V tc = vtanh<L>(cp[i] * sf + ti * si);
      hh[i] = tc * so;
      // z is dead after this loop: keep the gates in its place.
      z[i] = ti;
      z[N + i] = si;
      z[2 * N + i] = sf;
      z[3 * N + i] = so;
      gt[i] = tc;
    }
    // LTC step from h': gv becomes dL/dh'.
    ctx.prepare(p, b0, t);
    if (ctx.any_moving) adj(p, ctx, b0, t, gv.data(), acc, g);
    // LSTM adjoint.
    for (int i = 0; i < N; ++i) {
      const V ti = z[i], si = z[N + i], sf = z[2 * N + i], so = z[3 * N + i], tc = gt[i];
      const V gh = gv[i];
      const V gci = gc[i] + gh * so * (1.0f - tc * tc);
      dz[3 * N + i] = gh * tc * so * (1.0f - so);
      dz[2 * N + i] = gci * cp[i] * sf * (1.0f - sf);
      dz[i] = gci * si * (1.0f - ti * ti);
      dz[N + i] = gci * ti * si * (1.0f - si);
      gc[i] = gci * sf;
    }
    gemv_lanes<L>(m.W.data(), J, M, dz.data(), nullptr, gu.data());
    scatter_rows<L>(gu.data(), p.B, b0, F, mg.du + static_cast<int64_t>(t) * F, static_cast<int64_t>(T) * F);
    std::copy(gu.begin() + F, gu.end(), gv.begin());
    lacc.push(dz.data(), u.data());
  }
  acc.flush();
  lacc.flush();
  scatter_rows<L>(gv.data(), p.B, b0, N, g.dh0, N);
  scatter_rows<L>(gc.data(), p.B, b0, N, mg.dc0, N);
}

template <int L, int A, bool CACHE_SIG>
void mixed_backward_impl(const MixedProblem& m, const float* states, const float* cells, const float* cot_s,
                         const float* cot_c, const Grads& g, const MixedGrads& mg) {
  const Problem& p = *m.ltc;
  const int tiles = (p.B + L - 1) / L;
  const int nt = common::threads_for(tiles, 3 * mixed_work_units(m, L), kMinParallelWork);
  const int N = p.N, F = m.F, M = F + N, J = 4 * N;
  std::vector<Accum<A>> accs = make_accums<A>(p, nt);
  std::vector<LSTMAccum<L>> laccs;
  laccs.reserve(static_cast<size_t>(nt));
  for (int th = 0; th < nt; ++th) laccs.emplace_back(J, M);
  common::parallel_chunks(nt, [&](int c) {
    const auto [t0, t1] = common::chunk_range(tiles, nt, c);
    for (int64_t tile = t0; tile < t1; ++tile)
      mixed_backward_tile<L, A, CACHE_SIG>(m, static_cast<int>(tile) * L, states, cells, cot_s, cot_c, g, mg,
                                           accs[static_cast<size_t>(c)], laccs[static_cast<size_t>(c)]);
  });
  write_param_grads<A>(p, accs, g);
  // LSTM weights: chunks summed in a fixed order, then split into W_x and W_h.
  std::vector<double>& dw = laccs[0].dw;
  std::vector<double>& db = laccs[0].db;
  for (size_t th = 1; th < laccs.size(); ++th) {
    for (size_t q = 0; q < dw.size(); ++q) dw[q] += laccs[th].dw[q];
    for (size_t q = 0; q < db.size(); ++q) db[q] += laccs[th].db[q];
  }
  for (int j = 0; j < J; ++j) {
    for (int f = 0; f < F; ++f)
      mg.dwx[static_cast<int64_t>(j) * F + f] = static_cast<float>(dw[static_cast<size_t>(j) * M + f]);
    for (int k = 0; k < N; ++k)
      mg.dwh[static_cast<int64_t>(j) * N + k] = static_cast<float>(dw[static_cast<size_t>(j) * M + F + k]);
    mg.db[j] = static_cast<float>(db[static_cast<size_t>(j)]);
  }
}

inline void mixed_backward(const MixedProblem& m, const float* states, const float* cells, const float* cot_s,
                           const float* cot_c, const Grads& g, const MixedGrads& mg) {
  const Problem& p = *m.ltc;
  if (p.B == 0 || p.T == 0 || p.N == 0) return;
  with_lanes(p.B, [&]<int L>() {
    with_backward_config<L>(
        p, [&]<int A, bool C>() { mixed_backward_impl<L, A, C>(m, states, cells, cot_s, cot_c, g, mg); });
  });
}

NCPS_ISA_END
}  // namespace ncps::ltc::cpu
