// The elementwise pieces of one CfC step on nb batch rows, forward and backward: backbone
// activations, the heads with the closed-form update, and the mixed-memory LSTM cell.
#pragma once

#include <algorithm>
#include <cstdint>

#include "cfc/cpu/activations.h"
#include "cfc/problem.h"

namespace ncps::cfc::cpu {
NCPS_ISA_BEGIN

// ---- elementwise pieces -----------------------------------------------------------------------

// dst[0:n] = src[0:n] in native vectors: the staging copies move one short (b, t) row at a time
// (I or N floats), where a memmove call per row cost more than the copy.
NCPS_INLINE void copy_row(const float* src, int n, float* dst) {
  for (int j = 0; j < n; j += W) {
    const int m = std::min(W, n - j);
    store_m(dst + j, load_m(src + j, m), m);
  }
}

// Backbone activation of nb rows: z = act(a).
inline void act_rows(int act, int nb, int w, const float* a, float* z) {
  const int64_t n = static_cast<int64_t>(nb) * w;  // rows are contiguous (ld = w)
  for (int64_t j = 0; j < n; j += W) {
    const int m = static_cast<int>(std::min<int64_t>(W, n - j));
    store_m(z + j, act_fwd(act, load_m(a + j, m)), m);
  }
}

// da = dz * act'(a). Column vectors outside, rows inside (see heads_fwd_).
inline void act_grad_rows(int act, int nb, int w, const float* a, const float* z, const float* dz, int64_t lddz,
                          float* da) {
  for (int j = 0; j < w; j += W) {
    const int m = std::min(W, w - j);
    for (int b = 0; b < nb; ++b) {
      const int64_t o = static_cast<int64_t>(b) * w + j;
      store_m(da + o, load_m(dz + b * lddz + j, m) * act_grad(act, load_m(a + o, m), load_m(z + o, m)), m);
    }
  }
}

// Heads forward on nb rows. H (ld hs) holds the head pre-activations [p1 | p2 | pa | pb]
// (or [p1] in pure mode) and receives what the backward needs: [f1 | f2 | t_a | g] (or
// [f1 | e]). Writes h' into hout (ld ldo) and into out2 (ld ldo2): the workspace's state, which
// the next step reads, and the caller's (B, T, N) states, while the rows are in registers (a copy
// after the loop read the (T, B, N) workspace back across the batch, a cache miss per row). The transcendentals avoid
// vector divisions (tanh by a refined reciprocal, the gate as 1 / (1 + 2^u) with u = -(pa dt + pb) log2(e)): they were
// most of this loop's time, which was a third of the wired forward's.
// FOLD: H's third block holds the folded gate pre-activation pa dt + pb (weights.h:
// fold_time_heads), and is left as it is (the backward recomputes pa).
template <int MODE, bool FOLD>
inline void heads_fwd_(int nb, int n, float* H, int hs, const float* dtr, float* hout, int64_t ldo, float* out2,
                       int64_t ldo2, const float* w_tau, const float* A) {
  constexpr float kLog2e = 1.44269504088896341f;
  // One vector of neurons: ld(o) loads H's columns o + [its lanes], st(o, v) stores them, out(v)
  // stores h'; dtv holds each lane's dt, wt / a each lane's w_tau / A (pure mode). Every lane is
  // computed by the same instructions whichever rows and columns the vector holds.
  auto body = [&](auto ld, auto st, auto out, vf dtv, vf wt, vf a) NCPS_INLINE_LAMBDA {
    if constexpr (MODE == PURE) {
      const vf f = ld(0);
      const vf e = vexp(-dtv * (vabs(wt) + vabs(f)));
      st(n, e);
      out(a - a * e * f);
    } else {
      const vf f1 = vtanh<W, true>(ld(0));
      const vf f2 = vtanh<W, true>(ld(n));
      const vf g =
          FOLD ? vsigmoid_log2(ld(2 * n) * -kLog2e) : vsigmoid_log2(ld(2 * n) * (-dtv * kLog2e) - ld(3 * n) * kLog2e);
      const vf h = MODE == NO_GATE ? f1 + g * f2 : f1 + g * (f2 - f1);
      st(0, f1);
      st(n, f2);
      st(3 * n, g);
      out(h);
    }
  };
  // A last vector of at most W/2 lanes (the 2-, 6- and 8-wide ends of the wired CfC's 34-, 22-
  // and 8-neuron layers) takes several rows at once, where one vector per row wasted most of its
  // lanes: on AutoNCP(64, 8) with AVX-512, 4.1 vectors per row instead of 6. Up to W/4 lanes:
  // Q rows (RowLanes, AVX-512); up to W/2: two rows (load_pair, the two halves of the vector).
  [[maybe_unused]] auto packed = [&]<int Q>(int j, int m) {
    if constexpr (kRowLanes) {
      const vf wt = MODE == PURE ? load_m(w_tau + j, m) : vf{};
      const vf a = MODE == PURE ? load_m(A + j, m) : vf{};
      auto rows = [&](const RowLanes<Q>& rl, int b) NCPS_INLINE_LAMBDA {
        float* hp = H + static_cast<int64_t>(b) * hs + j;
        float* ho = hout + b * ldo + j;
        float* o2 = out2 + b * ldo2 + j;
        body([&](int o) { return rl.load(hp + o, hs); }, [&](int o, vf v) { rl.store(hp + o, hs, v); },
             [&](vf v) {
               rl.store(ho, ldo, v);
               rl.store(o2, ldo2, v);
             },
             rl.per_row(dtr + b), rl.per_col(wt), rl.per_col(a));
      };
      const RowLanes<Q> full(m, Q);  // (the masks and permutations once per column vector)
      int b = 0;
      for (; b + Q <= nb; b += Q) rows(full, b);
      if (b < nb) rows(RowLanes<Q>(m, nb - b), b);
    }
  };
  auto pairs = [&](int j, int m) {
    const vf wt = MODE == PURE ? load_pair(w_tau + j, w_tau + j, m) : vf{};
    const vf a = MODE == PURE ? load_pair(A + j, A + j, m) : vf{};
    int b = 0;
    for (; b + 1 < nb; b += 2) {
      float* hp = H + static_cast<int64_t>(b) * hs + j;
      float* hq = hp + hs;
      float* ho = hout + b * ldo + j;
      float* o2 = out2 + b * ldo2 + j;
      body([&](int o) { return load_pair(hp + o, hq + o, m); }, [&](int o, vf v) { store_pair(hp + o, hq + o, v, m); },
           [&](vf v) {
             store_pair(ho, ho + ldo, v, m);
             store_pair(o2, o2 + ldo2, v, m);
           },
           splat_pair(dtr[b], dtr[b + 1]), wt, a);
    }
    return b;  // the first row left (an odd last one)
  };
  // Column vectors outside, rows inside: consecutive iterations are independent rows with the
  // same lane mask, and a row's partial last vector is not loaded right after the overlapping
  // stores of its previous vector (a masked load that overlaps a pending store waits for it).
  for (int j = 0; j < n; j += W) {
    const int m = std::min(W, n - j);
    int b0 = 0;
    if constexpr (kRowLanes) {
      if (8 * m <= W) {  // m <= 2 on AVX-512
        packed.template operator()<8>(j, m);
        continue;
      }
      if (4 * m <= W) {
        packed.template operator()<4>(j, m);
        continue;
      }
    }
    if (2 * m <= W) b0 = pairs(j, m);
    const vf wt = MODE == PURE ? load_m(w_tau + j, m) : vf{};
    const vf a = MODE == PURE ? load_m(A + j, m) : vf{};
    for (int b = b0; b < nb; ++b) {
      float* hp = H + static_cast<int64_t>(b) * hs + j;
      float* ho = hout + b * ldo + j;
      float* o2 = out2 + b * ldo2 + j;
      body([&](int o) { return load_m(hp + o, m); }, [&](int o, vf v) { store_m(hp + o, v, m); },
           [&](vf v) {
             store_m(ho, v, m);
             store_m(o2, v, m);
           },
           splat(dtr[b]), wt, a);
    }
  }
}

inline void heads_fwd(int mode, bool fold, int nb, int n, float* H, int hs, const float* dtr, float* hout, int64_t ldo,
                      float* out2, int64_t ldo2, const float* w_tau, const float* A) {
  if (mode == PURE)
    heads_fwd_<PURE, false>(nb, n, H, hs, dtr, hout, ldo, out2, ldo2, w_tau, A);
  else if (mode == NO_GATE)
    fold ? heads_fwd_<NO_GATE, true>(nb, n, H, hs, dtr, hout, ldo, out2, ldo2, w_tau, A)
         : heads_fwd_<NO_GATE, false>(nb, n, H, hs, dtr, hout, ldo, out2, ldo2, w_tau, A);
  else
    fold ? heads_fwd_<DEFAULT, true>(nb, n, H, hs, dtr, hout, ldo, out2, ldo2, w_tau, A)
         : heads_fwd_<DEFAULT, false>(nb, n, H, hs, dtr, hout, ldo, out2, ldo2, w_tau, A);
}

// Heads backward on nb rows: gh = dL/dh' (ld ldg) -> DH (ld hn) = dL/d(head pre-activations);
// adds dL/d dt to ddt[b] (unless ddt is null: the forward folded the time heads, H's t_a block
// is not pa, and backward.cpp adds those terms after the sweep); in pure mode accumulates dL/dA and dL/dw_tau into
// accA, accW. Column vectors outside, rows inside, as heads_fwd_ (and the pure-mode sums stay in registers). Hpre, when
// given, is the next H to be read (the previous step's, ld hs): each row's lines of it are prefetched as the row's are
// used (backward.cpp says when).
template <int MODE>
inline void heads_bwd_(int nb, int n, const float* H, int hs, const float* dtr, const float* gh, int64_t ldg, float* DH,
                       int hn, float* ddt, const float* w_tau, const float* A, float* accA, float* accW,
                       const float* Hpre) {
  auto pre = [&](int b, int j) NCPS_INLINE_LAMBDA {
    if (Hpre) {
      const float* q = Hpre + static_cast<int64_t>(b) * hs + j;
      __builtin_prefetch(q);
      __builtin_prefetch(q + n);
      if constexpr (MODE != PURE) {
        __builtin_prefetch(q + 2 * n);
        __builtin_prefetch(q + 3 * n);
      }
    }
  };
  // The gated modes' vector [j, j + m) on one row or two (ld: H, go: dL/dh', st: DH; dtv: the
  // lane's dt): returns the lanes' dL/d dt terms.
  auto gated = [&](int j, vf dtv, auto ld, vf go, auto st) {
    const vf f1 = ld(j);
    const vf f2 = ld(n + j);
    const vf ta = ld(2 * n + j);
    const vf g = ld(3 * n + j);
    vf dp1, dgl;
    if constexpr (MODE == NO_GATE) {
      dp1 = go * (1.0f - f1 * f1);
      dgl = go * f2;
    } else {
      dp1 = go * (1.0f - g) * (1.0f - f1 * f1);
      dgl = go * (f2 - f1);
    }
    const vf dgp = dgl * g * (1.0f - g);
    st(j, dp1);
    st(n + j, go * g * (1.0f - f2 * f2));
    st(2 * n + j, dgp * dtv);
    st(3 * n + j, dgp);
    return dgp * ta;
  };
  for (int j = 0; j < n; j += W) {
    const int m = std::min(W, n - j);
    vf sa{}, sw{}, a{}, wt{};
    if constexpr (MODE == PURE) {
      a = load_m(A + j, m);
      wt = load_m(w_tau + j, m);
    }
    int b = 0;
    // A last vector of at most W/2 lanes takes two rows at once (as in heads_fwd_; not in pure
    // mode, whose sums over rows would change order). Each half's dL/d dt sum adds the same
    // lanes in the same order as hsum of the row's own vector (whose other lanes are 0).
    if constexpr (MODE != PURE)
      if (2 * m <= W)
        for (; b + 1 < nb; b += 2) {
          pre(b, j);
          pre(b + 1, j);
          const float* hp = H + static_cast<int64_t>(b) * hs;
          const float* hq = hp + hs;
          float* dh = DH + static_cast<int64_t>(b) * hn;
          float* dq = dh + hn;
          const vf sdt = gated(
              j, splat_pair(dtr[b], dtr[b + 1]), [&](int o) { return load_pair(hp + o, hq + o, m); },
              load_pair(gh + b * ldg + j, gh + (b + 1) * ldg + j, m),
              [&](int o, vf v) { store_pair(dh + o, dq + o, v, m); });
          float s0 = 0.0f, s1 = 0.0f;
          for (int l = 0; l < W / 2; ++l) {
            s0 += sdt[l];
            s1 += sdt[W / 2 + l];
          }
          if (ddt) {
            ddt[b] += s0;
            ddt[b + 1] += s1;
          }
        }
    for (; b < nb; ++b) {
      pre(b, j);
      const float* hp = H + static_cast<int64_t>(b) * hs;
      float* dh = DH + static_cast<int64_t>(b) * hn;
      const float dtv = dtr[b];
      const vf go = load_m(gh + b * ldg + j, m);
      vf sdt;
      if constexpr (MODE == PURE) {
        const vf f = load_m(hp + j, m);
        const vf e = load_m(hp + n + j, m);
        const vf af = vabs(f);
        const vf aef = a * e * f;
        store_m(dh + j, go * (-(a * e) * (1.0f - dtv * af)), m);
        sa += go * (1.0f - e * f);
        sw += go * aef * dtv * vsign(wt);
        sdt = go * aef * (vabs(wt) + af);
      } else {
        sdt = gated(
            j, splat(dtv), [&](int o) { return load_m(hp + o, m); }, go, [&](int o, vf v) { store_m(dh + o, v, m); });
      }
      if (ddt) ddt[b] += hsum(sdt);
    }
    if constexpr (MODE == PURE) {
      store_m(accA + j, load_m(accA + j, m) + sa, m);
      store_m(accW + j, load_m(accW + j, m) + sw, m);
    }
  }
}

inline void heads_bwd(int mode, int nb, int n, const float* H, int hs, const float* dtr, const float* gh, int64_t ldg,
                      float* DH, int hn, float* ddt, const float* w_tau, const float* A, float* accA, float* accW,
                      const float* Hpre = nullptr) {
  if (mode == PURE)
    heads_bwd_<PURE>(nb, n, H, hs, dtr, gh, ldg, DH, hn, ddt, w_tau, A, accA, accW, Hpre);
  else if (mode == NO_GATE)
    heads_bwd_<NO_GATE>(nb, n, H, hs, dtr, gh, ldg, DH, hn, ddt, w_tau, A, accA, accW, Hpre);
  else
    heads_bwd_<DEFAULT>(nb, n, H, hs, dtr, gh, ldg, DH, hn, ddt, w_tau, A, accA, accW, Hpre);
}

// LSTM forward on nb rows: G (ld 4N) holds the gate pre-activations and receives
// [tanh(i), s(ig), s(fg + 1), s(og)]; c' = c fg + i ig, hl = tanh(c') og.
inline void lstm_fwd(int nb, int N, float* G, const float* cprev, float* cnew, float* hl) {
  for (int b = 0; b < nb; ++b) {
    float* g = G + static_cast<int64_t>(b) * 4 * N;
    const float* cp = cprev + static_cast<int64_t>(b) * N;
    float* cn = cnew + static_cast<int64_t>(b) * N;
    float* h = hl + static_cast<int64_t>(b) * N;
    for (int j = 0; j < N; j += W) {
      const int m = std::min(W, N - j);
      const vf i = vtanh(load_m(g + j, m));
      const vf ig = vsigmoid(load_m(g + N + j, m));
      const vf fg = vsigmoid(load_m(g + 2 * N + j, m) + 1.0f);
      const vf og = vsigmoid(load_m(g + 3 * N + j, m));
      const vf c = load_m(cp + j, m) * fg + i * ig;
      store_m(g + j, i, m);
      store_m(g + N + j, ig, m);
      store_m(g + 2 * N + j, fg, m);
      store_m(g + 3 * N + j, og, m);
      store_m(cn + j, c, m);
      store_m(h + j, vtanh(c) * og, m);
    }
  }
}

// LSTM backward on nb rows: dhl = dL/dhl, dc = dL/dc' (updated in place to dL/dc) ->
// DG (ld 4N) = dL/d(gate pre-activations).
inline void lstm_bwd(int nb, int N, const float* G, const float* cprev, const float* cnew, const float* dhl, float* dc,
                     float* DG) {
  for (int b = 0; b < nb; ++b) {
    const float* g = G + static_cast<int64_t>(b) * 4 * N;
    const float* cp = cprev + static_cast<int64_t>(b) * N;
    const float* cn = cnew + static_cast<int64_t>(b) * N;
    const float* dh = dhl + static_cast<int64_t>(b) * N;
    float* dcb = dc + static_cast<int64_t>(b) * N;
    float* dg = DG + static_cast<int64_t>(b) * 4 * N;
    for (int j = 0; j < N; j += W) {
      const int m = std::min(W, N - j);
      const vf i = load_m(g + j, m), ig = load_m(g + N + j, m), fg = load_m(g + 2 * N + j, m),
               og = load_m(g + 3 * N + j, m);
      const vf tc = vtanh(load_m(cn + j, m));
      const vf d = load_m(dh + j, m);
      const vf dcn = load_m(dcb + j, m) + d * og * (1.0f - tc * tc);
      store_m(dg + j, dcn * ig * (1.0f - i * i), m);
      store_m(dg + N + j, dcn * i * ig * (1.0f - ig), m);
      store_m(dg + 2 * N + j, dcn * load_m(cp + j, m) * fg * (1.0f - fg), m);
      store_m(dg + 3 * N + j, d * tc * og * (1.0f - og), m);
      store_m(dcb + j, dcn * fg, m);
    }
  }
}

NCPS_ISA_END
}  // namespace ncps::cfc::cpu
