// Compute kernels of the fused CfC primitives (see cfc_kernel.h for the layout).
//
// Forward: the input half of the first layer, x_t W_x^T + b for all (t, b), is one GEMM before
// the loop (as is the LSTM's input product); the loop then adds h W_h^T, runs the backbone and
// the heads, and applies the closed-form update. The batch is independent along the recurrence,
// so threads split it into tiles that each run the whole time loop without synchronising (on the
// blocking pool of cfc_pool.h).
//
// Backward (BPTT): the reverse sweep, on the same batch tiles, only propagates the recurrence
// (dheads -> dz -> backbone -> dh, and the LSTM), storing the pre-activation gradients of every
// layer. The weight, bias and input gradients are then large GEMMs over all T*B rows, split into
// tiles over the threads.
#include "cfc_kernel.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <tuple>

#include "cfc_math.h"
#include "cfc_pool.h"
#include "gemm.h"

namespace ncps::cfc {

using namespace ncps::cfcg;
using namespace ncps::cfcm;

namespace {

// Below ~2 MFLOP (~20 us on one core) waking a second thread does not pay.
constexpr double kMinParallelFlops = 2e6;

int threads_for(int64_t tasks, double flops) {
  if (tasks <= 1 || flops < kMinParallelFlops) return 1;
  return static_cast<int>(std::min<int64_t>(tasks, cfcp::Pool::max_threads()));
}

// Runs body(tid, nthreads) on `nt` threads of the blocking pool (serially when nt == 1).
template <class F>
void parallel(int nt, F&& body) {
  if (nt <= 1) {
    body(0, 1);
    return;
  }
  cfcp::Pool::get().run(nt, std::function<void(int, int)>(std::forward<F>(body)));
}

// Runs a list of independent jobs over `nt` threads.
void run_jobs(const std::vector<std::function<void()>>& jobs, int nt) {
  if (nt <= 1 || jobs.size() <= 1) {
    for (const auto& j : jobs) j();
    return;
  }
  cfcp::Pool::get().run_jobs(nt, jobs);
}

CFC_INLINE vf ldp(const float* p, int m) { return m == W ? load(p) : load_n(p, m); }
CFC_INLINE void stp(float* p, vf v, int m) {
  if (m == W)
    store(p, v);
  else
    store_n(p, v, m);
}
CFC_INLINE float hsum(vf v) {
  float s = 0.0f;
  for (int l = 0; l < W; ++l) s += v[l];
  return s;
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
  void bwd(int M, const float* dY, int64_t ldy, int c0, int cn, float* dX, int64_t ldx, bool acc) const {
    gemm_nn(M, cn, out, dY, ldy, rowmajor() + c0, in, dX, ldx, acc);
  }
};

struct UnitW {
  std::vector<Lin> bb;
  std::vector<const float*> bbias;
  Lin heads;                  // (hn, head_in): [ff1 (masked); ff2 (masked); time_a; time_b]
  std::vector<float> hbias;   // (hn)
  const float* w_tau = nullptr;
  const float* A = nullptr;
  const Lin& first() const { return bb.empty() ? heads : bb[0]; }
  const float* first_bias() const { return bb.empty() ? hbias.data() : bbias[0]; }
};

// pack: transposed copies for the forward GEMMs; backward: row-major stacks for dX = dY W.
// The mixed-memory LSTM's input and recurrent maps as (4N, I) and (4N, N) linear layers.
std::pair<Lin, Lin> lstm_weights(const Plan& p, const std::vector<const float*>& in) {
  Lin wx, wh;
  wx.part[0] = in[p.lwx];
  wx.out = 4 * p.N;
  wx.in = p.I;
  wh.part[0] = in[p.lwh];
  wh.out = 4 * p.N;
  wh.in = p.N;
  return {wx, wh};
}

std::vector<UnitW> make_weights(const Plan& p, const std::vector<const float*>& in, bool pack, bool backward) {
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
    if (pack) H.pack();
    if (backward) H.build_stack();
    w.hbias.resize(U.hn);
    for (int k = 0; k < nh; ++k) std::memcpy(w.hbias.data() + k * U.n, in[U.head_b[k]], U.n * sizeof(float));
    if (p.cfg.mode == PURE) {
      w.w_tau = in[U.w_tau];
      w.A = in[U.A];
    }
  }
  return uw;
}

void fill_rows(float* C, int64_t ldc, int rows, const float* bias, int n) {
  for (int r = 0; r < rows; ++r) std::memcpy(C + r * ldc, bias, n * sizeof(float));
}

// ---- elementwise pieces -----------------------------------------------------------------------

// Backbone activation of nb rows: z = act(a).
void act_rows(int act, int nb, int w, const float* a, float* z) {
  const int64_t n = static_cast<int64_t>(nb) * w;  // rows are contiguous (ld = w)
  for (int64_t j = 0; j < n; j += W) {
    const int m = static_cast<int>(std::min<int64_t>(W, n - j));
    stp(z + j, act_fwd(act, ldp(a + j, m)), m);
  }
}

// da = dz * act'(a).
void act_grad_rows(int act, int nb, int w, const float* a, const float* z, const float* dz, int64_t lddz, float* da) {
  for (int b = 0; b < nb; ++b) {
    const float* ab = a + static_cast<int64_t>(b) * w;
    const float* zb = z + static_cast<int64_t>(b) * w;
    const float* gb = dz + b * lddz;
    float* db = da + static_cast<int64_t>(b) * w;
    for (int j = 0; j < w; j += W) {
      const int m = std::min(W, w - j);
      stp(db + j, ldp(gb + j, m) * act_grad(act, ldp(ab + j, m), ldp(zb + j, m)), m);
    }
  }
}

// Heads forward on nb rows. H (ld hs) holds the head pre-activations [p1 | p2 | pa | pb]
// (or [p1] in pure mode) and receives what the backward needs: [f1 | f2 | t_a | g] (or
// [f1 | e]). Writes h' into hout (ld ldo).
void heads_fwd(int mode, int nb, int n, float* H, int hs, const float* dtr, float* hout, int64_t ldo,
               const float* w_tau, const float* A) {
  for (int b = 0; b < nb; ++b) {
    float* hp = H + static_cast<int64_t>(b) * hs;
    float* ho = hout + b * ldo;
    const float dtv = dtr[b];
    for (int j = 0; j < n; j += W) {
      const int m = std::min(W, n - j);
      if (mode == PURE) {
        const vf f = ldp(hp + j, m);
        const vf a = ldp(A + j, m);
        const vf e = vexp(-dtv * (vabs(ldp(w_tau + j, m)) + vabs(f)));
        stp(hp + n + j, e, m);
        stp(ho + j, a - a * e * f, m);
      } else {
        const vf f1 = vtanh(ldp(hp + j, m));
        const vf f2 = vtanh(ldp(hp + n + j, m));
        const vf g = vsigmoid(ldp(hp + 2 * n + j, m) * dtv + ldp(hp + 3 * n + j, m));
        const vf h = mode == NO_GATE ? f1 + g * f2 : f1 * (1.0f - g) + g * f2;
        stp(hp + j, f1, m);
        stp(hp + n + j, f2, m);
        stp(hp + 3 * n + j, g, m);
        stp(ho + j, h, m);
      }
    }
  }
}

// Heads backward on nb rows: gh = dL/dh' (ld ldg) -> DH (ld hn) = dL/d(head pre-activations);
// adds dL/d dt to ddt[b]; in pure mode accumulates dL/dA and dL/dw_tau into accA, accW.
void heads_bwd(int mode, int nb, int n, const float* H, int hs, const float* dtr, const float* gh, int64_t ldg,
               float* DH, int hn, float* ddt, const float* w_tau, const float* A, float* accA, float* accW) {
  for (int b = 0; b < nb; ++b) {
    const float* hp = H + static_cast<int64_t>(b) * hs;
    const float* g_ = gh + b * ldg;
    float* dh = DH + static_cast<int64_t>(b) * hn;
    const float dtv = dtr[b];
    vf sdt{};
    for (int j = 0; j < n; j += W) {
      const int m = std::min(W, n - j);
      const vf go = ldp(g_ + j, m);
      if (mode == PURE) {
        const vf f = ldp(hp + j, m);
        const vf e = ldp(hp + n + j, m);
        const vf a = ldp(A + j, m);
        const vf wt = ldp(w_tau + j, m);
        const vf af = vabs(f);
        const vf aef = a * e * f;
        stp(dh + j, go * (-(a * e) * (1.0f - dtv * af)), m);
        stp(accA + j, ldp(accA + j, m) + go * (1.0f - e * f), m);
        stp(accW + j, ldp(accW + j, m) + go * aef * dtv * vsign(wt), m);
        sdt += go * aef * (vabs(wt) + af);
      } else {
        const vf f1 = ldp(hp + j, m);
        const vf f2 = ldp(hp + n + j, m);
        const vf ta = ldp(hp + 2 * n + j, m);
        const vf g = ldp(hp + 3 * n + j, m);
        vf dp1, dgl;
        if (mode == NO_GATE) {
          dp1 = go * (1.0f - f1 * f1);
          dgl = go * f2;
        } else {
          dp1 = go * (1.0f - g) * (1.0f - f1 * f1);
          dgl = go * (f2 - f1);
        }
        const vf dgp = dgl * g * (1.0f - g);
        stp(dh + j, dp1, m);
        stp(dh + n + j, go * g * (1.0f - f2 * f2), m);
        stp(dh + 2 * n + j, dgp * dtv, m);
        stp(dh + 3 * n + j, dgp, m);
        sdt += dgp * ta;
      }
    }
    ddt[b] += hsum(sdt);
  }
}

// LSTM forward on nb rows: G (ld 4N) holds the gate pre-activations and receives
// [tanh(i), s(ig), s(fg + 1), s(og)]; c' = c fg + i ig, hl = tanh(c') og.
void lstm_fwd(int nb, int N, float* G, const float* cprev, float* cnew, float* hl) {
  for (int b = 0; b < nb; ++b) {
    float* g = G + static_cast<int64_t>(b) * 4 * N;
    const float* cp = cprev + static_cast<int64_t>(b) * N;
    float* cn = cnew + static_cast<int64_t>(b) * N;
    float* h = hl + static_cast<int64_t>(b) * N;
    for (int j = 0; j < N; j += W) {
      const int m = std::min(W, N - j);
      const vf i = vtanh(ldp(g + j, m));
      const vf ig = vsigmoid(ldp(g + N + j, m));
      const vf fg = vsigmoid(ldp(g + 2 * N + j, m) + 1.0f);
      const vf og = vsigmoid(ldp(g + 3 * N + j, m));
      const vf c = ldp(cp + j, m) * fg + i * ig;
      stp(g + j, i, m);
      stp(g + N + j, ig, m);
      stp(g + 2 * N + j, fg, m);
      stp(g + 3 * N + j, og, m);
      stp(cn + j, c, m);
      stp(h + j, vtanh(c) * og, m);
    }
  }
}

// LSTM backward on nb rows: dhl = dL/dhl, dc = dL/dc' (updated in place to dL/dc) ->
// DG (ld 4N) = dL/d(gate pre-activations).
void lstm_bwd(int nb, int N, const float* G, const float* cprev, const float* cnew, const float* dhl, float* dc,
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
      const vf i = ldp(g + j, m), ig = ldp(g + N + j, m), fg = ldp(g + 2 * N + j, m), og = ldp(g + 3 * N + j, m);
      const vf tc = vtanh(ldp(cn + j, m));
      const vf d = ldp(dh + j, m);
      const vf dcn = ldp(dcb + j, m) + d * og * (1.0f - tc * tc);
      stp(dg + j, dcn * ig * (1.0f - i * i), m);
      stp(dg + N + j, dcn * i * ig * (1.0f - ig), m);
      stp(dg + 2 * N + j, dcn * ldp(cp + j, m) * fg * (1.0f - fg), m);
      stp(dg + 3 * N + j, d * tc * og * (1.0f - og), m);
      stp(dcb + j, dcn * fg, m);
    }
  }
}

double step_flops(const Plan& p) {
  double f = 0;
  for (const Unit& U : p.units) {
    int prev = U.K;
    for (int w : U.widths) {
      f += 2.0 * prev * w;
      prev = w;
    }
    f += 2.0 * prev * U.hn;
  }
  if (p.cfg.mixed) f += 2.0 * 4 * p.N * (p.N + p.I);
  return f;
}

// ---- post-loop jobs ---------------------------------------------------------------------------

// C (M x N, ldc) = A^T B over K rows (A: K x M, lda; B: K x N, ldb), optionally times a mask
// (M x N, ld ldc), split into row/column tiles.
void add_tn_jobs(std::vector<std::function<void()>>& jobs, int M, int N, int K, const float* A, int64_t lda,
                 const float* B, int64_t ldb, float* C, int64_t ldc, const float* mask) {
  constexpr int RC = 64, CC = 96;
  for (int m0 = 0; m0 < M; m0 += RC)
    for (int n0 = 0; n0 < N; n0 += CC) {
      const int m1 = std::min(M, m0 + RC), n1 = std::min(N, n0 + CC);
      jobs.emplace_back([=] {
        gemm_cols(m1 - m0, n0, n1, K, A + m0, 1, lda, B, ldb, C + m0 * ldc, ldc, false);
        if (mask)
          for (int i = m0; i < m1; ++i)
            for (int j = n0; j < n1; ++j) C[i * ldc + j] *= mask[i * ldc + j];
      });
    }
}

// out[j] = sum over K rows of D[r, j], j < n.
void add_colsum_job(std::vector<std::function<void()>>& jobs, int K, int n, const float* D, int64_t ld, float* out) {
  jobs.emplace_back([=] {
    for (int j = 0; j < n; j += W) {
      const int m = std::min(W, n - j);
      vf s0{}, s1{};
      int r = 0;
      for (; r + 1 < K; r += 2) {
        s0 += ldp(D + r * ld + j, m);
        s1 += ldp(D + (r + 1) * ld + j, m);
      }
      if (r < K) s0 += ldp(D + r * ld + j, m);
      stp(out + j, s0 + s1, m);
    }
  });
}

}  // namespace

// ---- plan ---------------------------------------------------------------------------------------

Plan make_plan(const Config& cfg, int B, int T, int I) {
  Plan p;
  p.cfg = cfg;
  p.B = B;
  p.T = T;
  p.I = I;
  const int64_t TB = static_cast<int64_t>(T) * B;
  int idx = 3;
  int N = 0;
  for (int n : cfg.unit_sizes) N += n;
  p.N = N;
  if (cfg.mixed) {
    p.c0 = idx++;
    p.lwx = idx++;
    p.lb = idx++;
    p.lwh = idx++;
  }
  int64_t off = 0;
  auto take = [&off](int64_t n) {
    const int64_t o = off;
    off += n;
    return o;
  };
  p.xt_off = take(TB * I);
  p.dt_off = take(TB);
  p.hh_off = take((TB + B) * N);
  if (cfg.mixed) {
    p.hl_off = take(TB * N);
    p.gates_off = take(TB * 4 * N);
    p.cc_off = take((TB + B) * N);
  }
  int col = 0, in = I;
  for (size_t u = 0; u < cfg.unit_sizes.size(); ++u) {
    Unit U;
    U.n = cfg.unit_sizes[u];
    U.off = col;
    U.in = in;
    U.K = in + U.n;
    U.widths = cfg.backbone[u];
    U.head_in = U.widths.empty() ? U.K : U.widths.back();
    U.hn = cfg.mode == PURE ? U.n : 4 * U.n;
    U.hs = cfg.mode == PURE ? 2 * U.n : 4 * U.n;
    for (size_t l = 0; l < U.widths.size(); ++l) {
      U.bw.push_back(idx++);
      U.bb.push_back(idx++);
      U.a_off.push_back(take(TB * U.widths[l]));
      U.z_off.push_back(take(TB * U.widths[l]));
    }
    const int nh = cfg.mode == PURE ? 1 : 4;
    for (int k = 0; k < nh; ++k) {
      U.head_w[k] = idx++;
      U.head_b[k] = idx++;
    }
    if (cfg.mode == PURE) {
      U.w_tau = idx++;
      U.A = idx++;
    }
    if (cfg.masked[u]) U.mask = idx++;
    U.heads_off = take(TB * U.hs);
    p.units.push_back(U);
    col += U.n;
    in = U.n;
  }
  p.n_inputs = idx;
  p.ws_size = off;
  return p;
}

std::vector<std::vector<int>> input_shapes(const Plan& p) {
  std::vector<std::vector<int>> s(p.n_inputs);
  const int B = p.B, T = p.T, I = p.I, N = p.N;
  s[0] = p.cfg.step ? std::vector<int>{B, I} : std::vector<int>{B, T, I};
  s[1] = {B, N};
  s[2] = {B, T};
  if (p.cfg.mixed) {
    s[p.c0] = {B, N};
    s[p.lwx] = {4 * N, I};
    s[p.lb] = {4 * N};
    s[p.lwh] = {4 * N, N};
  }
  for (const Unit& U : p.units) {
    for (size_t l = 0; l < U.widths.size(); ++l) {
      s[U.bw[l]] = {U.widths[l], l == 0 ? U.K : U.widths[l - 1]};
      s[U.bb[l]] = {U.widths[l]};
    }
    for (int k = 0; k < 4; ++k) {
      if (U.head_w[k] < 0) continue;
      s[U.head_w[k]] = {U.n, U.head_in};
      s[U.head_b[k]] = {U.n};
    }
    if (U.w_tau >= 0) {
      s[U.w_tau] = {1, U.n};
      s[U.A] = {1, U.n};
    }
    if (U.mask >= 0) s[U.mask] = {U.n, U.head_in};
  }
  return s;
}

std::vector<std::string> input_names(const Plan& p) {
  std::vector<std::string> s(p.n_inputs);
  s[0] = "x";
  s[1] = "h0";
  s[2] = "dt";
  if (p.cfg.mixed) {
    s[p.c0] = "c0";
    s[p.lwx] = "lstm input_map.weight";
    s[p.lb] = "lstm input_map.bias";
    s[p.lwh] = "lstm recurrent_map.weight";
  }
  static const char* heads[4] = {"ff1", "ff2", "time_a", "time_b"};
  for (size_t u = 0; u < p.units.size(); ++u) {
    const Unit& U = p.units[u];
    const std::string pre = p.units.size() > 1 ? "layer_" + std::to_string(u) + "." : "";
    for (size_t l = 0; l < U.widths.size(); ++l) {
      s[U.bw[l]] = pre + "backbone." + std::to_string(l) + ".weight";
      s[U.bb[l]] = pre + "backbone." + std::to_string(l) + ".bias";
    }
    for (int k = 0; k < 4; ++k) {
      if (U.head_w[k] < 0) continue;
      s[U.head_w[k]] = pre + heads[k] + ".weight";
      s[U.head_b[k]] = pre + heads[k] + ".bias";
    }
    if (U.w_tau >= 0) {
      s[U.w_tau] = pre + "w_tau";
      s[U.A] = pre + "A";
    }
    if (U.mask >= 0) s[U.mask] = pre + "sparsity_mask";
  }
  return s;
}

// ---- forward ------------------------------------------------------------------------------------

void forward(const Plan& p, const std::vector<const float*>& in, float* states, float* c_final, float* ws) {
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

  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t) {
      std::memcpy(XT + (static_cast<int64_t>(t) * B + b) * I, x + (static_cast<int64_t>(b) * T + t) * I,
                  I * sizeof(float));
      DT[static_cast<int64_t>(t) * B + b] = dt[static_cast<int64_t>(b) * T + t];
    }
  std::memcpy(HH, h0, sizeof(float) * B * N);
  if (mixed) std::memcpy(CC, in[p.c0], sizeof(float) * B * N);

  // Tiny calls (a streaming step) use the weights as they are; otherwise transposed copies.
  const bool pack = TB >= 8;
  std::vector<UnitW> uw = make_weights(p, in, pack, /*backward=*/false);
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
  auto hoist = [&](int64_t r0, int rows) {
    fill_rows(P0 + r0 * ld0, ld0, rows, F0b, F0.out);
    F0.fwd(rows, XT + r0 * I, I, 0, I, P0 + r0 * ld0, ld0, true);
    if (mixed) {
      fill_rows(GT + r0 * 4 * N, 4 * N, rows, in[p.lb], 4 * N);
      lwx.fwd(rows, XT + r0 * I, I, 0, I, GT + r0 * 4 * N, 4 * N, true);
    }
  };
  const int nt = threads_for(B, flops);
  if (nt == 1)
    for (int64_t r0 = 0; r0 < TB; r0 += 256) hoist(r0, static_cast<int>(std::min<int64_t>(256, TB - r0)));

  auto run_tile = [&](int b0, int b1) {
    const int nb = b1 - b0;
    if (nt > 1)
      for (int t = 0; t < T; ++t) hoist(static_cast<int64_t>(t) * B + b0, nb);
    for (int t = 0; t < T; ++t) {
      const int64_t r = static_cast<int64_t>(t) * B + b0;  // first row of the tile at step t
      const float* dtr = DT + r;
      if (mixed) {
        float* G = GT + r * 4 * N;
        lwh.fwd(nb, HH + r * N, N, 0, N, G, 4 * N, true);
        lstm_fwd(nb, N, G, CC + r * N, CC + (r + B) * N, HL + r * N);
      }
      const float* hin_base = (mixed ? HL : HH) + r * N;
      float* hout_base = HH + (r + B) * N;
      for (size_t u = 0; u < p.units.size(); ++u) {
        const Unit& U = p.units[u];
        const UnitW& w = uw[u];
        const Lin& F = w.first();
        float* C;
        int64_t ldc;
        if (U.widths.empty()) {
          C = ws + U.heads_off + r * U.hs;
          ldc = U.hs;
        } else {
          C = ws + U.a_off[0] + r * U.widths[0];
          ldc = U.widths[0];
        }
        if (u > 0) {  // unit 0's input half was hoisted
          fill_rows(C, ldc, nb, w.first_bias(), F.out);
          F.fwd(nb, hout_base + p.units[u - 1].off, N, 0, U.in, C, ldc, true);
        }
        F.fwd(nb, hin_base + U.off, N, U.in, U.n, C, ldc, true);
        const float* zlast = nullptr;
        int wlast = 0;
        for (size_t l = 0; l < U.widths.size(); ++l) {
          const int wl = U.widths[l];
          float* a = ws + U.a_off[l] + r * wl;
          float* z = ws + U.z_off[l] + r * wl;
          if (l > 0) {
            fill_rows(a, wl, nb, w.bbias[l], wl);
            w.bb[l].fwd(nb, zlast, wlast, 0, wlast, a, wl, true);
          }
          act_rows(act, nb, wl, a, z);
          zlast = z;
          wlast = wl;
        }
        float* Hc = ws + U.heads_off + r * U.hs;
        if (!U.widths.empty()) {
          fill_rows(Hc, U.hs, nb, w.hbias.data(), U.hn);
          w.heads.fwd(nb, zlast, wlast, 0, wlast, Hc, U.hs, true);
        }
        heads_fwd(mode, nb, U.n, Hc, U.hs, dtr, hout_base + U.off, N, w.w_tau, w.A);
      }
    }
  };
  parallel(nt, [&](int tid, int nth) {
    const int b0 = static_cast<int>(static_cast<int64_t>(B) * tid / nth);
    const int b1 = static_cast<int>(static_cast<int64_t>(B) * (tid + 1) / nth);
    if (b1 > b0) run_tile(b0, b1);
  });

  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t)
      std::memcpy(states + (static_cast<int64_t>(b) * T + t) * N, HH + (static_cast<int64_t>(t + 1) * B + b) * N,
                  N * sizeof(float));
  if (mixed) std::memcpy(c_final, CC + TB * N, sizeof(float) * B * N);
}

// ---- backward -----------------------------------------------------------------------------------

int64_t backward_scratch_size(const Plan& p) {
  const int64_t TB = static_cast<int64_t>(p.T) * p.B;
  int64_t n = TB;  // dL/d dt
  for (const Unit& U : p.units) {
    n += TB * U.hn;
    for (int w : U.widths) n += TB * w;
  }
  if (p.cfg.mixed) n += TB * 4 * p.N;
  return n;
}

void backward(const Plan& p, const std::vector<const float*>& in, const float* ws, const float* dstates,
              const float* dc_final, const std::vector<float*>& grads, float* scratch, bool need_dx,
              bool need_weights) {
  const int B = p.B, T = p.T, I = p.I, N = p.N;
  const int64_t TB = static_cast<int64_t>(T) * B;
  const bool mixed = p.cfg.mixed;
  const int mode = p.cfg.mode, act = p.cfg.act;
  const float* XT = ws + p.xt_off;
  const float* DT = ws + p.dt_off;
  const float* HH = ws + p.hh_off;
  const float* HL = mixed ? ws + p.hl_off : nullptr;
  const float* GT = mixed ? ws + p.gates_off : nullptr;
  const float* CC = mixed ? ws + p.cc_off : nullptr;
  // Every gradient is overwritten below except the masks'.
  for (const Unit& U : p.units)
    if (U.mask >= 0) std::memset(grads[U.mask], 0, sizeof(float) * U.n * U.head_in);

  const std::vector<UnitW> uw = make_weights(p, in, /*pack=*/false, /*backward=*/true);
  Lin lwx, lwh;
  if (mixed) std::tie(lwx, lwh) = lstm_weights(p, in);
  const size_t nu = p.units.size();
  // Gradients w.r.t. every stored pre-activation, (T, B, .), carved from `scratch` (an MLX
  // buffer: reused from MLX's cache, so no page faults or zeroing per call).
  float* next = scratch;
  auto take = [&next](int64_t n) {
    float* o = next;
    next += n;
    return o;
  };
  std::vector<float*> DH(nu);
  std::vector<std::vector<float*>> DA(nu);
  int maxw = 1;
  for (size_t u = 0; u < nu; ++u) {
    const Unit& U = p.units[u];
    DH[u] = take(TB * U.hn);
    for (int w : U.widths) {
      DA[u].push_back(take(TB * w));
      maxw = std::max(maxw, w);
    }
  }
  float* DG = mixed ? take(TB * 4 * N) : nullptr;
  float* DDT = take(TB);
  const double flops = 2.0 * step_flops(p) * TB;
  const int nt = threads_for(B, flops);
  int64_t pure_len = 0;
  for (const Unit& U : p.units) pure_len += 2 * U.n;
  std::vector<std::vector<float>> pure_acc(nt, std::vector<float>(mode == PURE ? pure_len : 0, 0.0f));

  auto run_tile = [&](int b0, int b1, float* acc) {
    const int nb = b1 - b0;
    std::vector<float> G(static_cast<size_t>(nb) * N), carry(static_cast<size_t>(nb) * N, 0.0f),
        dhin(static_cast<size_t>(nb) * N), dc(static_cast<size_t>(nb) * N, 0.0f),
        dz0(static_cast<size_t>(nb) * maxw), dz1(static_cast<size_t>(nb) * maxw);
    if (mixed && dc_final) std::memcpy(dc.data(), dc_final + static_cast<int64_t>(b0) * N, sizeof(float) * nb * N);
    for (int t = T - 1; t >= 0; --t) {
      const int64_t r = static_cast<int64_t>(t) * B + b0;
      const float* dtr = DT + r;
      std::fill(DDT + r, DDT + r + nb, 0.0f);
      for (int b = 0; b < nb; ++b) {
        const float* ds = dstates + (static_cast<int64_t>(b0 + b) * T + t) * N;
        float* g = G.data() + static_cast<int64_t>(b) * N;
        const float* c = carry.data() + static_cast<int64_t>(b) * N;
        for (int j = 0; j < N; j += W) {
          const int m = std::min(W, N - j);
          stp(g + j, ldp(ds + j, m) + ldp(c + j, m), m);
        }
      }
      for (size_t uu = nu; uu-- > 0;) {
        const Unit& U = p.units[uu];
        const UnitW& w = uw[uu];
        float* dH = DH[uu] + r * U.hn;
        float* accA = nullptr;
        float* accW = nullptr;
        if (mode == PURE) {
          int64_t o = 0;
          for (size_t v = 0; v < uu; ++v) o += 2 * p.units[v].n;
          accA = acc + o;
          accW = acc + o + U.n;
        }
        heads_bwd(mode, nb, U.n, ws + U.heads_off + r * U.hs, U.hs, dtr, G.data() + U.off, N, dH, U.hn, DDT + r,
                  w.w_tau, w.A, accA, accW);
        const float* D1 = dH;
        int64_t ld1 = U.hn;
        if (!U.widths.empty()) {
          const int L = static_cast<int>(U.widths.size());
          float* dz = dz0.data();
          float* dzn = dz1.data();
          w.heads.bwd(nb, dH, U.hn, 0, U.head_in, dz, U.head_in, false);
          for (int l = L - 1; l >= 0; --l) {
            const int wl = U.widths[l];
            float* da = DA[uu][l] + r * wl;
            act_grad_rows(act, nb, wl, ws + U.a_off[l] + r * wl, ws + U.z_off[l] + r * wl, dz, wl, da);
            if (l > 0) {
              w.bb[l].bwd(nb, da, wl, 0, U.widths[l - 1], dzn, U.widths[l - 1], false);
              std::swap(dz, dzn);
            }
          }
          D1 = DA[uu][0] + r * U.widths[0];
          ld1 = U.widths[0];
        }
        const Lin& F = w.first();
        F.bwd(nb, D1, ld1, U.in, U.n, dhin.data() + U.off, N, false);
        if (uu > 0) F.bwd(nb, D1, ld1, 0, U.in, G.data() + p.units[uu - 1].off, N, true);
      }
      if (mixed) {
        float* dg = DG + r * 4 * N;
        lstm_bwd(nb, N, GT + r * 4 * N, CC + r * N, CC + (r + B) * N, dhin.data(), dc.data(), dg);
        lwh.bwd(nb, dg, 4 * N, 0, N, carry.data(), N, false);
      } else {
        std::swap(carry, dhin);
      }
    }
    std::memcpy(grads[1] + static_cast<int64_t>(b0) * N, carry.data(), sizeof(float) * nb * N);
    if (mixed) std::memcpy(grads[p.c0] + static_cast<int64_t>(b0) * N, dc.data(), sizeof(float) * nb * N);
  };
  parallel(nt, [&](int tid, int nth) {
    const int b0 = static_cast<int>(static_cast<int64_t>(B) * tid / nth);
    const int b1 = static_cast<int>(static_cast<int64_t>(B) * (tid + 1) / nth);
    if (b1 > b0) run_tile(b0, b1, pure_acc[tid].data());
  });

  // Weight, bias and input gradients: big products over all T*B rows.
  std::vector<std::function<void()>> jobs;
  const int K = static_cast<int>(TB);
  for (size_t u = 0; need_weights && u < nu; ++u) {
    const Unit& U = p.units[u];
    const float* INP = u == 0 ? XT : HH + static_cast<int64_t>(B) * N + p.units[u - 1].off;
    const int64_t ldi = u == 0 ? I : N;
    const float* HIN = (mixed ? HL : HH) + U.off;
    const float* mask = U.mask >= 0 ? in[U.mask] : nullptr;
    const int nh = mode == PURE ? 1 : 4;
    // The heads: input is the last backbone layer, or [inp, h] without backbone.
    for (int k = 0; k < nh; ++k) {
      const float* A = DH[u] + k * U.n;
      float* dW = grads[U.head_w[k]];
      const float* mk = k < 2 ? mask : nullptr;
      if (U.widths.empty()) {
        add_tn_jobs(jobs, U.n, U.in, K, A, U.hn, INP, ldi, dW, U.K, mk);
        add_tn_jobs(jobs, U.n, U.n, K, A, U.hn, HIN, N, dW + U.in, U.K, mk ? mk + U.in : nullptr);
      } else {
        const int L = static_cast<int>(U.widths.size());
        add_tn_jobs(jobs, U.n, U.head_in, K, A, U.hn, ws + U.z_off[L - 1], U.widths[L - 1], dW, U.head_in, mk);
      }
      add_colsum_job(jobs, K, U.n, A, U.hn, grads[U.head_b[k]]);
    }
    for (size_t l = 0; l < U.widths.size(); ++l) {
      const int wl = U.widths[l];
      const float* A = DA[u][l];
      float* dW = grads[U.bw[l]];
      if (l == 0) {
        add_tn_jobs(jobs, wl, U.in, K, A, wl, INP, ldi, dW, U.K, nullptr);
        add_tn_jobs(jobs, wl, U.n, K, A, wl, HIN, N, dW + U.in, U.K, nullptr);
      } else {
        add_tn_jobs(jobs, wl, U.widths[l - 1], K, A, wl, ws + U.z_off[l - 1], U.widths[l - 1], dW, U.widths[l - 1],
                    nullptr);
      }
      add_colsum_job(jobs, K, wl, A, wl, grads[U.bb[l]]);
    }
  }
  if (mixed && need_weights) {
    add_tn_jobs(jobs, 4 * N, I, K, DG, 4 * N, XT, I, grads[p.lwx], I, nullptr);
    add_tn_jobs(jobs, 4 * N, N, K, DG, 4 * N, HH, N, grads[p.lwh], N, nullptr);
    add_colsum_job(jobs, K, 4 * N, DG, 4 * N, grads[p.lb]);
  }
  // dx (B, T, I): per time chunk, rows b of step t go to dx[b, t].
  if (need_dx) {
    const Unit& U0 = p.units[0];
    const Lin& F = uw[0].first();
    const float* D1 = U0.widths.empty() ? DH[0] : DA[0][0];
    const int64_t ld1 = U0.widths.empty() ? U0.hn : U0.widths[0];
    const float* dgp = DG;
    float* dx = grads[0];
    const int tchunk = std::max(1, 256 / std::max(1, B));
    for (int t0 = 0; t0 < T; t0 += tchunk) {
      const int t1 = std::min(T, t0 + tchunk);
      jobs.emplace_back([=, &F, &lwx] {
        for (int t = t0; t < t1; ++t) {
          const int64_t r = static_cast<int64_t>(t) * B;
          F.bwd(B, D1 + r * ld1, ld1, 0, I, dx + static_cast<int64_t>(t) * I, static_cast<int64_t>(T) * I, false);
          if (dgp) lwx.bwd(B, dgp + r * 4 * N, 4 * N, 0, I, dx + static_cast<int64_t>(t) * I, static_cast<int64_t>(T) * I, true);
        }
      });
    }
  }
  run_jobs(jobs, threads_for(static_cast<int64_t>(jobs.size()), flops));

  // dt (B, T) and the pure-mode parameters.
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t) grads[2][static_cast<int64_t>(b) * T + t] = DDT[static_cast<int64_t>(t) * B + b];
  if (mode == PURE && need_weights) {
    int64_t o = 0;
    for (const Unit& U : p.units) {
      float* gA = grads[U.A];
      float* gW = grads[U.w_tau];
      for (int j = 0; j < U.n; ++j) {
        float sa = 0.0f, sw = 0.0f;
        for (int th = 0; th < nt; ++th) {
          sa += pure_acc[th][o + j];
          sw += pure_acc[th][o + U.n + j];
        }
        gA[j] = sa;
        gW[j] = sw;
      }
      o += 2 * U.n;
    }
  }
}

}  // namespace ncps::cfc
