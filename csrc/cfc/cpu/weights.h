// The CfC weights as the kernels use them: Linear layers given as row blocks (the four heads are
// four arrays), masked copies of the wired units' ff1/ff2, and transposed (packed) copies for the
// forward GEMMs or row-major stacks for the backward's dX = dY W.
#pragma once

#include <cmath>
#include <cstring>
#include <utility>
#include <vector>

#include "cfc/problem.h"
#include "common/gemm.h"

namespace ncps::cfc::cpu {
NCPS_ISA_BEGIN

using common::gemm_nn;
using common::gemm_nt;
using common::transpose;

inline void fill_rows(float* C, int64_t ldc, int rows, const float* bias, int n) {
  for (int r = 0; r < rows; ++r) std::memcpy(C + r * ldc, bias, n * sizeof(float));
}

// A Linear weight W (out, in), row-major, given as `parts` row blocks of `out / parts` rows each
// (the four heads are four arrays). fwd: C (+)= A W[:, k0:k0+kn]^T, through the transposed copy
// when packed, else by dot products on the arrays as they are (tiny calls: a streaming step).
// bwd: dX (+)= dY W[:, c0:c0+cn], with W row-major (a stacked copy for several parts).
struct Lin {
  const float* part[4] = {nullptr, nullptr, nullptr, nullptr};
  int parts = 1;
  int out = 0, in = 0;
  std::vector<float> masked[2];  // ff1/ff2 times the mask
  std::vector<float> wt;         // (in, out), when packed
  std::vector<float> stack;      // (out, in), when parts > 1 and the backward needs it

  int rows() const { return out / parts; }
  void pack() {
    wt.resize(static_cast<size_t>(in) * out);
    for (int k = 0; k < parts; ++k) transpose(rows(), in, part[k], in, wt.data() + k * rows(), out);
  }
  void build_stack() {
    if (parts == 1) return;
    const size_t blk = static_cast<size_t>(rows()) * in;
    stack.resize(blk * parts);
    for (int k = 0; k < parts; ++k) std::memcpy(stack.data() + k * blk, part[k], blk * sizeof(float));
  }
  const float* rowmajor() const { return parts == 1 ? part[0] : stack.data(); }
  void fwd(int M, const float* A, int64_t lda, int k0, int kn, float* C, int64_t ldc, bool acc) const {
    if (!wt.empty()) {
      gemm_nn(M, out, kn, A, lda, wt.data() + static_cast<int64_t>(k0) * out, out, C, ldc, acc);
      return;
    }
    for (int k = 0; k < parts; ++k) gemm_nt(M, rows(), kn, A, lda, part[k] + k0, in, C + k * rows(), ldc, acc);
  }
  // C = bias + [A1 | A2] W[:, k0 : k0 + k1 + k2]^T, A1 (M x k1, lda1), A2 (M x k2, lda2; none when
  // k2 = 0): a layer's [input, state] product with its bias in one pass over C (packed), no copies.
  void fwd_bias(int M, const float* A1, int64_t lda1, int k1, const float* A2, int64_t lda2, int k2, int k0,
                const float* bias, float* C, int64_t ldc) const {
    if (!wt.empty()) {
      common::gemm_nn2(M, out, k1, A1, lda1, k2, A2, lda2, wt.data() + static_cast<int64_t>(k0) * out, out, bias, C,
                       ldc, false);
      return;
    }
    fill_rows(C, ldc, M, bias, out);
    fwd(M, A1, lda1, k0, k1, C, ldc, true);
    if (k2 > 0) fwd(M, A2, lda2, k0 + k1, k2, C, ldc, true);
  }
  void bwd(int M, const float* dY, int64_t ldy, int c0, int cn, float* dX, int64_t ldx, bool acc) const {
    gemm_nn(M, cn, out, dY, ldy, rowmajor() + c0, in, dX, ldx, acc);
  }
};

struct UnitW {
  std::vector<Lin> bb;
  std::vector<const float*> bbias;
  Lin heads;                  // (hn, head_in): [ff1 (masked); ff2 (masked); time_a; time_b]
  std::vector<float> hbias;   // (hn)
  std::vector<float> folded;  // time_a dt + time_b (fold_time_heads)
  const float* w_tau = nullptr;
  const float* A = nullptr;
  const Lin& first() const { return bb.empty() ? heads : bb[0]; }
  const float* first_bias() const { return bb.empty() ? hbias.data() : bbias[0]; }
};

// pack: transposed copies for the forward GEMMs; backward: row-major stacks for dX = dY W.
// The mixed-memory LSTM's input and recurrent maps as (4N, I) and (4N, N) linear layers.
inline std::pair<Lin, Lin> lstm_weights(const Plan& p, const std::vector<const float*>& in) {
  Lin wx, wh;
  wx.part[0] = in[p.lwx];
  wx.out = 4 * p.N;
  wx.in = p.I;
  wh.part[0] = in[p.lwh];
  wh.out = 4 * p.N;
  wh.in = p.N;
  return {wx, wh};
}

// Whether the time heads fold, and the dt they fold with: in the gated modes the gate reads
// pa dt + pb = z (W_a dt + W_b)^T + (b_a dt + b_b), so when one dt holds for every (t, b) of the
// call (no timespans, or constant ones) the time_a and time_b heads fold into one head of n
// columns: the forward's heads product has 3n columns instead of 4n, and the backward recomputes
// pa after its sweep, only when dL/d dt is asked for (training never does: the vjp's need_dt).
// CfC(16, 64): forward -16 %, fwd+bwd -7 %; the wired CfC (34/22/8 neurons): forward -14 %, and
// fwd+bwd +10 % in the rare call that differentiates the timespans (the narrow recomputation).
// NaN (a padded step) or two values: no folding. Nor with a non-finite initial state h0 (the
// only way an infinity reaches the heads: x's are NaN by then, and the state stays bounded): the
// unfolded pa dt + pb can be inf - inf = NaN where the folded product is a saturating inf, and
// both paths must give the reference's result.
inline bool fold_time_heads(const Plan& p, const float* dt, const float* h0, float& value) {
  const int64_t n = static_cast<int64_t>(p.B) * p.T;
  if (p.cfg.mode == PURE || n < 8) return false;
  value = dt[0];
  for (int64_t i = 0; i < n; ++i)
    if (!(dt[i] == value)) return false;
  for (int64_t i = 0, m = static_cast<int64_t>(p.B) * p.N; i < m; ++i)
    if (!std::isfinite(h0[i])) return false;
  return true;
}

inline std::vector<UnitW> make_weights(const Plan& p, const std::vector<const float*>& in, bool pack, bool backward,
                                       const float* fold_dt = nullptr) {
  std::vector<UnitW> uw(p.units.size());
  for (size_t u = 0; u < p.units.size(); ++u) {
    const Unit& U = p.units[u];
    UnitW& w = uw[u];
    w.bb.resize(U.widths.size());
    for (size_t l = 0; l < U.widths.size(); ++l) {
      Lin& L = w.bb[l];
      L.part[0] = in[U.bw[l]];
      L.out = U.widths[l];
      L.in = l == 0 ? U.K : U.widths[l - 1];
      if (pack) L.pack();
      w.bbias.push_back(in[U.bb[l]]);
    }
    const int nh = p.cfg.mode == PURE ? 1 : 4;
    Lin& H = w.heads;
    H.parts = nh;
    H.out = U.hn;
    H.in = U.head_in;
    const size_t blk = static_cast<size_t>(U.n) * U.head_in;
    for (int k = 0; k < nh; ++k) {
      H.part[k] = in[U.head_w[k]];
      if (U.mask >= 0 && k < 2) {
        const float* m = in[U.mask];
        H.masked[k].resize(blk);
        for (size_t i = 0; i < blk; ++i) H.masked[k][i] = H.part[k][i] * m[i];
        H.part[k] = H.masked[k].data();
      }
    }
    if (fold_dt) {  // heads [ff1; ff2; time_a dt + time_b] (see fold_time_heads)
      const float d = *fold_dt;
      H.parts = 3;
      H.out = 3 * U.n;
      w.folded.resize(blk);
      const float *wa = in[U.head_w[2]], *wb = in[U.head_w[3]];
      for (size_t i = 0; i < blk; ++i) w.folded[i] = wa[i] * d + wb[i];
      H.part[2] = w.folded.data();
      H.part[3] = nullptr;
    }
    if (pack) H.pack();
    if (backward) H.build_stack();
    w.hbias.resize(U.hn);
    for (int k = 0; k < nh; ++k) std::memcpy(w.hbias.data() + k * U.n, in[U.head_b[k]], U.n * sizeof(float));
    if (fold_dt) {
      const float *ba = in[U.head_b[2]], *bb = in[U.head_b[3]];
      for (int i = 0; i < U.n; ++i) w.hbias[2 * U.n + i] = ba[i] * *fold_dt + bb[i];
    }
    if (p.cfg.mode == PURE) {
      w.w_tau = in[U.w_tau];
      w.A = in[U.A];
    }
  }
  return uw;
}

NCPS_ISA_END
}  // namespace ncps::cfc::cpu
