// CPU kernels of the fused LTC sequence: forward (LTCSequence) and BPTT (LTCSequenceGrad).
//
// Layout. The batch is cut into tiles of L lanes (L = 16 with AVX-512, 8 with AVX, else 4; fewer
// when that leaves threads idle). Inside a tile every per-neuron quantity is one L-float vector
// (state v[i] = lanes b0..b0+L-1 of neuron i), so each synapse does its sigmoid and accumulation
// as SIMD work over the batch lanes. Padded lanes (b >= B) run with dt = 0: finite and frozen.
//
// Sparsity. The mask is turned once per call into a synapse list grouped by destination (CSR):
// for destination i, the synapses k -> i with mask[k, i] != 0, carrying w*mask, the sigmoid's
// constants, erev and the source index (32 bytes). Forward and backward iterate only over that
// list, so an NCP wiring costs in proportion to its synapse count, and a dense mask costs one list
// entry per synapse. Per destination, numerator and denominator sums stay in registers.
//
// Math. sigmoid(sigma (v - mu)) = 1 / (1 + 2^u), u = sigma log2(e) mu - sigma log2(e) v: one FMA,
// then exp2 by range reduction and a degree-5 polynomial and a refined reciprocal estimate
// (common/simd.h); absolute error ~1e-7.
//
// Threading. Tiles are independent; contiguous runs of them (chunks) go to the threads of the
// common pool (serial for tiny work).
// The backward keeps per-thread parameter-gradient accumulators (lane vectors, folded to 4 lanes
// when the synapse set is too large for the cache), flushed into double every few steps and summed
// over chunks once per call in a fixed order, so results are deterministic.
//
// Backward strategy. The forward keeps only the state after every step (its output). For step t,
// the backward recomputes the K sub-step states from the stored state of step t-1, keeping them
// and 1/denominator for that one step ((2K+1)*N*L floats), runs the adjoint of the K sub-steps in
// reverse, and finally the adjoint of the sensory synapses (held over the step).
//
// Reuse. One LTC step forward (advance) and its adjoint (StepAdjoint), the lane gather/scatter,
// the parameter accumulators and the lane/memory-strategy dispatch (with_lanes,
// with_backward_config) are shared with the mixed-memory kernel (mixed.h), which runs
// an LSTM before every step on the same tiles.
//
// Targets. Kernel code: compiled once per instruction-set target inside that target's namespace
// (common/isa.h) through forward.cpp and backward.cpp (entry points in kernel.h); the problem
// types it works on are in ltc/problem.h.
#pragma once

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "common/convert.h"
#include "common/simd.h"
#include "common/thread_pool.h"
#include "ltc/problem.h"

namespace ncps::ltc::cpu {
NCPS_ISA_BEGIN

using common::lane_vector;
using common::put;
using common::Sink;
using common::splat;
using common::Storage;
using common::vf;
using common::vsigmoid_log2;

// Widest tile the target's registers hold natively (wider generic vectors are split by the
// compiler into slow pieces).
constexpr int kMaxLanes = common::W;

// Work (in lane-synapse updates) below which one thread is faster than waking a second one.
constexpr double kMinParallelWork = 1 << 16;

// Lanes per tile: as wide as the registers allow while leaving at least one tile per thread.
inline int choose_lanes(int B) {
  const int P = common::max_threads();
  if (kMaxLanes >= 16 && B > 8 && (B + 15) / 16 >= P) return 16;
  if (kMaxLanes >= 8 && B > 4 && (B + 7) / 8 >= P) return 8;
  return 4;
}

inline int64_t work_units(const Problem& p, int L) {
  const int64_t tiles = (p.B + L - 1) / L;
  return tiles * L * static_cast<int64_t>(p.T) *
         (static_cast<int64_t>(p.K) * (p.rec->size() + p.N) + p.sens->size() + p.N);
}

// Per-tile, per-step quantities shared by forward and backward.
template <int L>
struct StepCtx {
  using V = vf<L>;
  lane_vector<V> xs;               // (I) inputs of this step
  lane_vector<V> cmt, bnum, bden;  // (N) cm/h, gl*vl + num_s, cm/h + gl + den_s + eps
  V dtv, h, moving;                // moving: 0 where dt == 0, else 1 (NaN dt moves: NaN state)
  bool any_moving = false;

  explicit StepCtx(const Problem& p) : xs(p.I), cmt(p.N), bnum(p.N), bden(p.N) {}

  // Gather x[:, t] and dt[:, t] for lanes b0.., then the sensory conductances and per-neuron bases.
  void prepare(const Problem& p, int b0, int t) {
    const int nl = std::min(L, p.B - b0);
    for (int j = 0; j < p.I; ++j) {
      V v = splat<L>(0.0f);
      for (int l = 0; l < nl; ++l) v[l] = p.x[(static_cast<int64_t>(b0 + l) * p.T + t) * p.I + j];
      xs[j] = v;
    }
    V d = splat<L>(0.0f);
    for (int l = 0; l < nl; ++l) d[l] = p.dt[static_cast<int64_t>(b0 + l) * p.T + t];
    // An invalid dt (negative, NaN, inf) becomes NaN and so does the state: never a plausible
    // number (docs/reliability.md); dt = 0 (and padded lanes) keep the state, like the reference.
    d = (d >= 0.0f) ? d : splat<L>(NAN);
    d = (d <= 3.4e38f) ? d : splat<L>(NAN);
    dtv = d;
    auto mv = d != 0.0f;
    moving = mv ? splat<L>(1.0f) : splat<L>(0.0f);
    any_moving = false;
    for (int l = 0; l < L; ++l) any_moving |= (mv[l] != 0);
    h = (mv ? d : splat<L>(1.0f)) / static_cast<float>(p.K);
    const SynapseList& s = *p.sens;
    for (int i = 0; i < p.N; ++i) {
      V num = splat<L>(0.0f), den = splat<L>(0.0f);
      for (int32_t e = s.rowptr[i]; e < s.rowptr[i + 1]; ++e) {
        const Synapse& y = s.syn[e];
        const V a = y.wm * vsigmoid_log2<L>(y.c - y.sl * xs[y.src]);
        num += a * y.erev;
        den += a;
      }
      const V c = p.cm[i] / h;
      cmt[i] = c;
      bnum[i] = p.gl[i] * p.vl[i] + num;
      bden[i] = c + p.gl[i] + den + p.eps;
    }
  }
};

// One semi-implicit sub-step vin -> vout; the backward's recompute also stores 1/denominator and,
// optionally, each synapse's sigmoid.
template <int L, bool STORE_QINV, bool STORE_SIG = false>
NCPS_INLINE void substep(const Problem& p, const StepCtx<L>& c, const vf<L>* vin, vf<L>* vout, vf<L>* qinv,
                         vf<L>* sig = nullptr) {
  using V = vf<L>;
  const SynapseList& r = *p.rec;
  const Synapse* syn = r.syn.data();
  const int32_t* rp = r.rowptr.data();
  for (int i = 0; i < p.N; ++i) {
    V num = splat<L>(0.0f), den = splat<L>(0.0f);
    for (int32_t e = rp[i]; e < rp[i + 1]; ++e) {
      const Synapse& y = syn[e];
      const V sg = vsigmoid_log2<L>(y.c - y.sl * vin[y.src]);
      if constexpr (STORE_SIG) sig[e] = sg;
      const V a = y.wm * sg;
      num += a * y.erev;
      den += a;
    }
    const V q = c.bden[i] + den;
    vout[i] = (c.cmt[i] * vin[i] + c.bnum[i] + num) / q;
    if constexpr (STORE_QINV) qinv[i] = 1.0f / q;
  }
}

// One LTC step in place: v (the start state) becomes the state after the K sub-steps; lanes with
// dt <= 0 keep the start state. w and v0 are scratch vectors of N lanes each.
template <int L>
NCPS_INLINE void advance(const Problem& p, const StepCtx<L>& c, lane_vector<vf<L>>& v, lane_vector<vf<L>>& w,
                         lane_vector<vf<L>>& v0) {
  if (!c.any_moving) return;
  v0 = v;
  for (int k = 0; k < p.K; ++k) {
    substep<L, false>(p, c, v.data(), w.data(), nullptr);
    std::swap(v, w);
  }
  const auto mv = c.moving > 0.0f;
  for (int i = 0; i < p.N; ++i) v[i] = mv ? v[i] : v0[i];
}

// Lane l of the tile owns the n floats at base + (b0 + l) * lane_stride (e.g. one time step of a
// (B, T, n) array with lane_stride = T * n): gather them into n lane vectors (padded lanes get 0),
// or scatter n lane vectors back to the real lanes.
template <int L>
NCPS_INLINE void gather_rows(const float* base, int64_t lane_stride, int B, int b0, int n, vf<L>* out) {
  const int nl = std::min(L, B - b0);
  const float* src0 = base + static_cast<int64_t>(b0) * lane_stride;
#if defined(__AVX512F__)
  // One hardware gather per vector (padded lanes masked to 0) instead of L scalar stores into it.
  if constexpr (L == 16) {
    if (lane_stride <= INT32_MAX / 16) {
      const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                             _mm512_set1_epi32(static_cast<int>(lane_stride)));
      const __mmask16 k = static_cast<__mmask16>(nl >= 16 ? 0xFFFFu : (1u << nl) - 1u);
      for (int i = 0; i < n; ++i) out[i] = (vf<L>)_mm512_mask_i32gather_ps(_mm512_setzero_ps(), k, idx, src0 + i, 4);
      return;
    }
  }
#endif
#if defined(__AVX2__)
  if constexpr (L == 8) {
    if (lane_stride <= INT32_MAX / 8) {
      const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
      const __m256i idx = _mm256_mullo_epi32(lanes, _mm256_set1_epi32(static_cast<int>(lane_stride)));
      const __m256 k = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(nl), lanes));
      for (int i = 0; i < n; ++i) out[i] = (vf<L>)_mm256_mask_i32gather_ps(_mm256_setzero_ps(), src0 + i, idx, k, 4);
      return;
    }
  }
#endif
  for (int i = 0; i < n; ++i) out[i] = splat<L>(0.0f);
  for (int l = 0; l < nl; ++l) {
    const float* src = base + static_cast<int64_t>(b0 + l) * lane_stride;
    for (int i = 0; i < n; ++i) out[i][l] = src[i];
  }
}

template <int L>
NCPS_INLINE void scatter_rows(const vf<L>* in, int B, int b0, int n, float* base, int64_t lane_stride) {
  const int nl = std::min(L, B - b0);
  for (int l = 0; l < nl; ++l) {
    float* dst = base + static_cast<int64_t>(b0 + l) * lane_stride;
    for (int i = 0; i < n; ++i) dst[i] = in[i][l];
  }
}

// The rows of lanes [b0, b0 + L) (each n values) into the output `s` at element offset
// off + (b0 + l) * lane_stride, in its storage type (a half row is gathered into `row`, n floats,
// and rounded as it is written).
template <int L>
NCPS_INLINE void put_rows(const vf<L>* in, int B, int b0, int n, const Sink& s, int64_t off, int64_t lane_stride,
                          float* row) {
  if (s.st == Storage::f32) return scatter_rows<L>(in, B, b0, n, static_cast<float*>(s.data) + off, lane_stride);
  const int nl = std::min(L, B - b0);
  for (int l = 0; l < nl; ++l) {
    for (int i = 0; i < n; ++i) row[i] = in[i][l];
    put(s, off + static_cast<int64_t>(b0 + l) * lane_stride, row, n);
  }
}

// ---------------------------------------------------------------------------------------------
// Forward: states (B, T, N) for lanes [b0, b0 + L), in their storage type.
template <int L>
void forward_tile(const Problem& p, int b0, const Sink& states) {
  using V = vf<L>;
  const int N = p.N;
  lane_vector<V> v(N), w(N), v0(N);
  lane_vector<float> row(states.st == Storage::f32 ? 0 : N);  // put_rows' scratch for half states
  StepCtx<L> c(p);
  gather_rows<L>(p.h0, N, p.B, b0, N, v.data());
  for (int t = 0; t < p.T; ++t) {
    c.prepare(p, b0, t);
    advance<L>(p, c, v, w, v0);
    put_rows<L>(v.data(), p.B, b0, N, states, static_cast<int64_t>(t) * N, static_cast<int64_t>(p.T) * N, row.data());
  }
}

template <int L>
void forward_impl(const Problem& p, const Sink& states) {
  const int tiles = (p.B + L - 1) / L;
  const int nt = common::threads_for(tiles, work_units(p, L), kMinParallelWork);
  common::parallel_chunks(nt, [&](int c) {
    const auto [t0, t1] = common::chunk_range(tiles, nt, c);
    for (int64_t tile = t0; tile < t1; ++tile) forward_tile<L>(p, static_cast<int>(tile) * L, states);
  });
}

// Calls f.template operator()<L>() with the tile width for a batch of B (see choose_lanes).
template <class F>
void with_lanes(int B, F&& f) {
  switch (choose_lanes(B)) {
#if defined(__AVX512F__)
    case 16:
      return f.template operator()<16>();
#endif
#if defined(__AVX__)
    case 8:
      return f.template operator()<8>();
#endif
    default:
      return f.template operator()<4>();
  }
}

inline void forward(const Problem& p, const Sink& states) {
  if (p.B == 0 || p.T == 0 || p.N == 0) return;
  with_lanes(p.B, [&]<int L>() { forward_impl<L>(p, states); });
}

// ---------------------------------------------------------------------------------------------
// Backward.
// Per-chunk parameter-gradient accumulators: 4 vectors per synapse, sum dP*a (erev), da*s
// (w, times the mask), dz (mu, times -sigma) and dz*(v - mu) (sigma); 3 per neuron: cm, gleak,
// vleak. They hold A lanes (A = L, or fewer when the synapse set is large: the L lanes are folded
// before accumulating, which keeps the accumulators cache-resident for dense wirings), and are
// flushed into double-precision sums every kFlushSteps steps so long sequences keep float64-level
// accumulation accuracy.
constexpr int kFlushSteps = 8;

template <int L, int A>
NCPS_INLINE vf<A> fold(vf<L> x) {
  if constexpr (A == L) {
    return x;
  } else {
    vf<L / 2> lo, hi;
    std::memcpy(&lo, &x, sizeof(lo));
    std::memcpy(&hi, reinterpret_cast<const char*>(&x) + sizeof(lo), sizeof(hi));
    return fold<L / 2, A>(lo + hi);
  }
}

template <int A>
struct Accum {
  using V = vf<A>;
  int64_t nr, ns, nn;
  lane_vector<V> lanes;      // rec (4 nr), sens (4 ns), neurons (3 N)
  std::vector<double> sums;  // same layout, lanes summed
  explicit Accum(const Problem& p)
      : nr(4 * p.rec->size()),
        ns(4 * p.sens->size()),
        nn(3 * static_cast<int64_t>(p.N)),
        lanes(static_cast<size_t>(nr + ns + nn), splat<A>(0.0f)),
        sums(static_cast<size_t>(nr + ns + nn), 0.0) {}
  V* rec() { return lanes.data(); }
  V* sens() { return lanes.data() + nr; }
  V* neu() { return lanes.data() + nr + ns; }
  void flush() {
    for (size_t e = 0; e < lanes.size(); ++e) {
      double t = 0.0;
      for (int l = 0; l < A; ++l) t += lanes[e][l];
      sums[e] += t;
      lanes[e] = splat<A>(0.0f);
    }
  }
};

// Adjoint of the synapses of one destination: conductance a = wm * sigmoid(sigma * (vsrc - mu))
// enters the numerator as a*erev (adjoint dP) and the denominator as a (adjoint dQ). The sigmoids
// come from `sig` (stored by the recompute) when CACHED, else are recomputed.
template <int L, int A, bool CACHED = false>
NCPS_INLINE void synapse_adjoint(const Synapse* syn, int32_t e0, int32_t e1, const vf<L>* vsrc, vf<L> dP, vf<L> dQ,
                                 vf<A>* acc, vf<L>* gsrc, const vf<L>* sig = nullptr) {
  using V = vf<L>;
  for (int32_t e = e0; e < e1; ++e) {
    const Synapse& y = syn[e];
    const V v = vsrc[y.src];
    const V d = v - y.mu;
    V s;
    if constexpr (CACHED) {
      s = sig[e];
    } else {
      s = vsigmoid_log2<L>(y.c - y.sl * v);
    }
    const V a = y.wm * s;
    const V da = dP * y.erev + dQ;
    const V dz = da * a * (1.0f - s);
    vf<A>* ac = acc + 4 * static_cast<int64_t>(e);
    ac[0] += fold<L, A>(dP * a);
    ac[1] += fold<L, A>(da * s);
    ac[2] += fold<L, A>(dz);
    ac[3] += fold<L, A>(dz * d);
    gsrc[y.src] += dz * y.sigma;
  }
}

// Adjoint of one LTC step for lanes [b0, b0 + L) at time t: the caller puts the step's start state
// into start() (N lane vectors, padded lanes 0 or any finite value) and, on entry, gv holds
// dL/d(state after the step); on return gv holds dL/d(start state). Recomputes the K sub-steps,
// accumulates the parameter gradients into acc and writes ddt and dx of (b, t). Requires
// c.any_moving (otherwise the step is the identity: gv passes unchanged, ddt = dx = 0).
template <int L, int A, bool CACHE_SIG>
struct StepAdjoint {
  using V = vf<L>;
  lane_vector<V> Vs_, Qi_, Sg_, gk_, gn_, pass_, dns_, dds_, dcmt_, dxs_;

  explicit StepAdjoint(const Problem& p)
      : Vs_(static_cast<size_t>(p.K + 1) * p.N),
        Qi_(static_cast<size_t>(p.K) * p.N),
        Sg_(CACHE_SIG ? static_cast<size_t>(p.K) * static_cast<size_t>(p.rec->size()) : 0),
        gk_(p.N),
        gn_(p.N),
        pass_(p.N),
        dns_(p.N),
        dds_(p.N),
        dcmt_(p.N),
        dxs_(p.I) {}

  V* start() { return Vs_.data(); }

  void operator()(const Problem& p, const StepCtx<L>& c, int b0, int t, V* gv, Accum<A>& acc, const Grads& g) {
    const int N = p.N, K = p.K, T = p.T, I = p.I;
    const SynapseList& r = *p.rec;
    const SynapseList& s = *p.sens;
    const size_t nsyn = static_cast<size_t>(r.size());
    vf<A>* acc_cm = acc.neu();
    vf<A>* acc_gl = acc_cm + N;
    vf<A>* acc_vl = acc_gl + N;
    // Work buffers as local pointers (kept in registers across the loops).
    V *Vs = Vs_.data(), *Qi = Qi_.data(), *Sg = Sg_.data(), *gk = gk_.data(), *gn = gn_.data();
    V *pass = pass_.data(), *dns = dns_.data(), *dds = dds_.data(), *dcmt = dcmt_.data(), *dxs = dxs_.data();
    // Recompute the sub-step states of this step.
    for (int k = 0; k < K; ++k)
      substep<L, true, CACHE_SIG>(p, c, Vs + static_cast<size_t>(k) * N, Vs + static_cast<size_t>(k + 1) * N,
                                  Qi + static_cast<size_t>(k) * N,
                                  // Sg is empty without the sigmoid cache: no offset into a null pointer (UB).
                                  CACHE_SIG ? Sg + static_cast<size_t>(k) * nsyn : nullptr);
    // Adjoint of the K sub-steps (frozen lanes pass their gradient straight through).
    for (int i = 0; i < N; ++i) {
      gk[i] = gv[i] * c.moving;
      pass[i] = gv[i] - gk[i];
      dns[i] = splat<L>(0.0f);
      dds[i] = splat<L>(0.0f);
      dcmt[i] = splat<L>(0.0f);
    }
    for (int k = K - 1; k >= 0; --k) {
      const V* vin = Vs + static_cast<size_t>(k) * N;
      const V* vout = vin + N;
      const V* qi = Qi + static_cast<size_t>(k) * N;
      for (int i = 0; i < N; ++i) gn[i] = splat<L>(0.0f);
      for (int i = 0; i < N; ++i) {
        const V dP = gk[i] * qi[i];
        const V dQ = -dP * vout[i];
        gn[i] += dP * c.cmt[i];
        dcmt[i] += dP * vin[i] + dQ;
        dns[i] += dP;
        dds[i] += dQ;
        synapse_adjoint<L, A, CACHE_SIG>(r.syn.data(), r.rowptr[i], r.rowptr[i + 1], vin, dP, dQ, acc.rec(), gn,
                                         CACHE_SIG ? Sg + static_cast<size_t>(k) * nsyn : nullptr);
      }
      std::swap(gk, gn);
    }
    V dtsum = splat<L>(0.0f);
    for (int i = 0; i < N; ++i) {
      gv[i] = gk[i] + pass[i];
      acc_cm[i] += fold<L, A>(dcmt[i] / c.h);
      acc_gl[i] += fold<L, A>(p.vl[i] * dns[i] + dds[i]);
      acc_vl[i] += fold<L, A>(p.gl[i] * dns[i]);
      dtsum += dcmt[i] * c.cmt[i];
    }
    // cm_t = cm * K / dt  =>  d cm_t / d dt = -cm_t / dt.
    const auto mv = c.moving > 0.0f;
    const V ddt = mv ? -dtsum / (mv ? c.dtv : splat<L>(1.0f)) : splat<L>(0.0f);
    const int nl = std::min(L, p.B - b0);
    for (int l = 0; l < nl; ++l) g.ddt[static_cast<int64_t>(b0 + l) * T + t] = ddt[l];
    // Adjoint of the sensory synapses, held over the K sub-steps.
    for (int j = 0; j < I; ++j) dxs[j] = splat<L>(0.0f);
    for (int i = 0; i < N; ++i)
      synapse_adjoint<L, A>(s.syn.data(), s.rowptr[i], s.rowptr[i + 1], c.xs.data(), dns[i], dds[i], acc.sens(), dxs);
    scatter_rows<L>(dxs, p.B, b0, I, g.dx + static_cast<int64_t>(t) * I, static_cast<int64_t>(T) * I);
  }
};

// gather_rows from an array in its storage type (from element `off` on): a half one's n-element
// rows of the tile's lanes are widened into `wide` (L * n floats) first.
template <int L>
void gather_rows_of(const common::Rows& a, int64_t off, int64_t lane_stride, int B, int b0, int n, vf<L>* out,
                    float* wide) {
  if (a.st == Storage::f32) return gather_rows<L>(static_cast<const float*>(a.data) + off, lane_stride, B, b0, n, out);
  const int nl = std::min(L, B - b0);
  const uint16_t* h = static_cast<const uint16_t*>(a.data) + off;
  common::widen_rows(a.st, h + b0 * lane_stride, nl, lane_stride, n, wide);
  gather_rows<L>(wide, n, nl, 0, n, out);
}

template <int L, int A, bool CACHE_SIG>
void backward_tile(const Problem& p, int b0, const common::Rows& states, const common::Rows& cot, const Grads& g,
                   Accum<A>& acc) {
  using V = vf<L>;
  const int N = p.N, T = p.T;
  const int64_t row = static_cast<int64_t>(T) * N;
  StepCtx<L> c(p);
  StepAdjoint<L, A, CACHE_SIG> adj(p);
  lane_vector<V> gv(N, splat<L>(0.0f)), ct(N);
  lane_vector<float> wide(states.st == Storage::f32 && cot.st == Storage::f32 ? 0 : L * N);
  for (int t = T - 1; t >= 0; --t) {
    if ((T - 1 - t) % kFlushSteps == kFlushSteps - 1) acc.flush();
    gather_rows_of<L>(cot, static_cast<int64_t>(t) * N, row, p.B, b0, N, ct.data(), wide.data());
    for (int i = 0; i < N; ++i) gv[i] += ct[i];
    c.prepare(p, b0, t);
    if (!c.any_moving) continue;  // every lane frozen: gradient passes through, dx = ddt = 0
    if (t > 0)
      gather_rows_of<L>(states, static_cast<int64_t>(t - 1) * N, row, p.B, b0, N, adj.start(), wide.data());
    else
      gather_rows<L>(p.h0, N, p.B, b0, N, adj.start());
    adj(p, c, b0, t, gv.data(), acc, g);
  }
  acc.flush();
  scatter_rows<L>(gv.data(), p.B, b0, N, g.dh0, N);
}

inline void scatter_synapse_grads(const SynapseList& l, const double* sums, float* dw, float* dsigma, float* dmu,
                                  float* derev) {
  for (int64_t e = 0; e < l.size(); ++e) {
    const double* s = sums + 4 * e;
    const int64_t q = l.pos[e];
    derev[q] = static_cast<float>(s[0]);
    dw[q] = static_cast<float>(l.syn[e].mask * s[1]);
    dmu[q] = static_cast<float>(-l.syn[e].sigma * s[2]);
    dsigma[q] = static_cast<float>(s[3]);
  }
}

// One accumulator per chunk, allocated outside the parallel section so that an allocation
// failure surfaces as an exception of the task instead of terminating a worker.
template <int A>
std::vector<Accum<A>> make_accums(const Problem& p, int nt) {
  std::vector<Accum<A>> accs;
  accs.reserve(static_cast<size_t>(nt));
  for (int th = 0; th < nt; ++th) accs.emplace_back(p);
  return accs;
}

// Chunks' sums in a fixed order (deterministic for a given batch), written to the
// parameter gradients.
template <int A>
void write_param_grads(const Problem& p, std::vector<Accum<A>>& accs, const Grads& g) {
  std::vector<double>& total = accs[0].sums;
  for (size_t th = 1; th < accs.size(); ++th)
    for (size_t q = 0; q < total.size(); ++q) total[q] += accs[th].sums[q];
  const int64_t nr = 4 * p.rec->size(), ns = 4 * p.sens->size();
  scatter_synapse_grads(*p.rec, total.data(), g.dw, g.dsigma, g.dmu, g.derev);
  scatter_synapse_grads(*p.sens, total.data() + nr, g.dsw, g.dssigma, g.dsmu, g.dserev);
  const double* n = total.data() + nr + ns;
  for (int i = 0; i < p.N; ++i) {
    g.dcm[i] = static_cast<float>(n[i]);
    g.dgl[i] = static_cast<float>(n[p.N + i]);
    g.dvl[i] = static_cast<float>(n[2 * p.N + i]);
  }
}

template <int L, int A, bool CACHE_SIG>
void backward_impl(const Problem& p, const common::Rows& states, const common::Rows& cot, const Grads& g) {
  const int tiles = (p.B + L - 1) / L;
  const int nt = common::threads_for(tiles, 3 * work_units(p, L), kMinParallelWork);
  std::vector<Accum<A>> accs = make_accums<A>(p, nt);
  common::parallel_chunks(nt, [&](int c) {
    const auto [t0, t1] = common::chunk_range(tiles, nt, c);
    for (int64_t tile = t0; tile < t1; ++tile)
      backward_tile<L, A, CACHE_SIG>(p, static_cast<int>(tile) * L, states, cot, g, accs[static_cast<size_t>(c)]);
  });
  write_param_grads<A>(p, accs, g);
}

// Accumulator footprint per thread above which the lanes are folded to 4 before accumulating.
constexpr int64_t kFoldBytes = int64_t(8) << 20;
// Per-step sigmoid store (K * synapses * L floats) up to which the recompute keeps the sigmoids
// for the adjoint instead of evaluating them twice.
constexpr int64_t kSigCacheBytes = int64_t(2) << 20;

// Calls f.template operator()<A, CACHE_SIG>() with the backward's memory strategy for L lanes.
template <int L, class F>
void with_backward_config(const Problem& p, F&& f) {
  const int64_t lane_bytes = L * int64_t(sizeof(float));
  const int64_t acc_bytes = (4 * (p.rec->size() + p.sens->size()) + 3 * int64_t(p.N)) * lane_bytes;
  const bool cache = p.K * p.rec->size() * lane_bytes <= kSigCacheBytes;
  if constexpr (L > 4) {
    if (acc_bytes > kFoldBytes) return cache ? f.template operator()<4, true>() : f.template operator()<4, false>();
  }
  return cache ? f.template operator()<L, true>() : f.template operator()<L, false>();
}

inline void backward(const Problem& p, const common::Rows& states, const common::Rows& cot, const Grads& g) {
  if (p.B == 0 || p.T == 0 || p.N == 0) return;
  with_lanes(p.B, [&]<int L>() {
    with_backward_config<L>(p, [&]<int A, bool C>() { backward_impl<L, A, C>(p, states, cot, g); });
  });
}

NCPS_ISA_END
}  // namespace ncps::ltc::cpu
