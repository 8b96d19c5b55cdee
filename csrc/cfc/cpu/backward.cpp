// Backward kernel (BPTT) of the fused CfC sequence: the reverse sweep, on the same batch chunks as
// the forward, only propagates the recurrence (dheads -> dz -> backbone -> dh, and the LSTM),
// storing the pre-activation gradients of every layer. The weight, bias and input gradients are
// then large GEMMs over all T*B rows, split into jobs over the common pool's threads.
#include <algorithm>
#include <cstring>
#include <functional>
#include <tuple>
#include <vector>

#include "cfc/cpu/chunks.h"
#include "cfc/cpu/elementwise.h"
#include "cfc/cpu/kernel.h"
#include "cfc/cpu/weights.h"
#include "common/convert.h"
#include "common/thread_pool.h"

namespace ncps::cfc::cpu {
NCPS_ISA_BEGIN

namespace {

// An array of the workspace the backward reads: float32, or a half model's half copy (problem.h:
// Plan::act), widened as it is read, a few rows at a time.
struct Saved {
  const float* f = nullptr;
  const uint16_t* h = nullptr;
  common::Storage st = common::Storage::f32;
  Saved(const float* data = nullptr) : f(data) {}  // NOLINT: float32 arrays pass as they are
  Saved(const uint16_t* data, common::Storage s) : h(data), st(s) {}
  Saved at(int64_t i) const {  // from element i on
    Saved o = *this;
    if (f) o.f += i;
    if (h) o.h += i;
    return o;
  }
  // Rows [r, r + n), `width` elements of each (ld apart): the float32 data itself (rows ld apart),
  // or widened into buf (width apart; ld_of says which).
  const float* rows(int64_t r, int64_t n, int64_t ld, int width, float* buf) const {
    if (f) return f + r * ld;
    common::widen_rows(st, h + r * ld, n, ld, width, buf);
    return buf;
  }
  int64_t ld_of(int64_t ld, int width) const { return f ? ld : width; }
};

inline Saved saved_rows(const common::Rows& a) {
  return a.st == common::Storage::f32 ? Saved(static_cast<const float*>(a.data))
                                      : Saved(static_cast<const uint16_t*>(a.data), a.st);
}

// A (T, B, .) gradient array of the sweep's: float32, or a half model's half scratch (read back
// by the post-loop products as a Saved). A step's rows are computed in float32 (in place, or in
// a buffer) and rounded into the half array when done.
struct Grad {
  float* f = nullptr;
  uint16_t* h = nullptr;
  common::Sink sink;  // the half array as a rounding target
  // Where rows [r, r + n) (ld apart) are computed: in place, or in buf (ld apart too).
  float* rows(int64_t r, int64_t ld, float* buf) const { return f ? f + r * ld : buf; }
  // The rows computed at `at` (from rows()) into the half array.
  void store(int64_t r, int64_t n, int64_t ld, const float* at) const {
    if (h) common::put(sink, r * ld, at, n * ld);
  }
  Saved saved() const { return f ? Saved(f) : Saved(h, sink.st); }
};

// ---- post-loop products ------------------------------------------------------------------------
//
// The weight and bias gradients are C = A^T B and column sums over all K = T*B rows of the
// stored (T, B, .) arrays, which outgrow the caches as B*T grows (2.3 KB per row-step for
// CfC(16, 64): ~15 MB at B*T = 6 400, ~120 MB at 51 200). Computed one output tile at a time,
// every tile streamed its operands through all K rows again: the four heads re-read the last
// backbone layer once each, column tiles re-read A, and the column sums re-read what the
// products had just read; ~7.9 KB of memory traffic per row-step, which cost nothing while the
// arrays fitted the 32 MB L3 and ~18 % of the dense forward+backward at B 512, T 100 once they
// did not. So a job now walks the K rows once, in blocks of the GEMM's k panel (common::KC,
// ~200 KB of operands, in L2), doing all its products and sums on each block: the operands are
// read from memory once per job (~3.3 KB per row-step). The blocks are the GEMM's own panels and
// the column sums keep their two accumulators across blocks, so every gradient gets exactly the
// sums (same terms, same order) it got from one call over all K rows.

// One B operand of a product C (ldc) = A^T B, B: K x n (ldb), optionally times a mask laid out as C.
struct BOperand {
  Saved B;
  int64_t ldb;
  int n;
  float* C;
  int64_t ldc;
  const float* mask;
};

// Rows [0, m) of b.C = A^T b.B, A: K x m (lda; columns of a wider array).
struct TnPart {
  Saved A;
  int64_t lda;
  int m;
  BOperand b;
};

// out[j] = sum over the K rows of D[r, j], j < n: two accumulators (even, odd rows) as one pass.
struct SumPart {
  Saved D;
  int64_t ld;
  int n;
  float* out;
};

// One job of the post-loop: products and sums that share operands, done block by block of K.
struct PostJob {
  std::vector<TnPart> tn;
  std::vector<SumPart> sums;
  int rows = 0;  // output rows (columns of A): the job's size
};

// Output rows per job: 64. With 128, CfC(16, 64)'s post-loop was three big jobs (two of heads,
// one of the backbone) for two threads, one of which then ran two while the other waited; 64
// makes six, and each job's operand block stays smaller. Measured (2 threads, min of 3 A/B
// pairs, fwd+bwd at T 100): dense B 32 2.40 -> 2.34 ms, B 256 23.5 -> 22.1 ms, wired unchanged
// to -3 %; 32 lost again at B 256 (more passes over the shared B operand).
constexpr int kJobRows = 64;
static_assert(common::KC % 2 == 0, "the column sums pair rows within a block");

void run_post_job(const PostJob& job, int K) {
  // The odd-row accumulators of the column sums (the even ones live in `out`).
  size_t odd_len = 0;
  for (const SumPart& s : job.sums) odd_len += static_cast<size_t>(s.n);
  std::vector<float> odd(odd_len);  // zeros (value-initialised: no fill-constructor instance, common/isa.h)
  for (const SumPart& s : job.sums) std::fill(s.out, s.out + s.n, 0.0f);
  // A block of each half operand, widened (a half model's saved activations).
  int wa = 0, wb = 0, ws = 0;
  for (const TnPart& t : job.tn) {
    if (t.A.h) wa = std::max(wa, t.m);
    if (t.b.B.h) wb = std::max(wb, t.b.n);
  }
  for (const SumPart& s : job.sums)
    if (s.D.h) ws = std::max(ws, s.n);
  std::vector<float> abuf(static_cast<size_t>(common::KC) * wa), bbuf(static_cast<size_t>(common::KC) * wb),
      sbuf(static_cast<size_t>(common::KC) * ws);
  for (int k0 = 0; k0 < K; k0 += common::KC) {
    const int kc = std::min(common::KC, K - k0);
    for (const TnPart& t : job.tn)
      common::gemm_cols(t.m, 0, t.b.n, kc, t.A.rows(k0, kc, t.lda, t.m, abuf.data()), 1, t.A.ld_of(t.lda, t.m),
                        t.b.B.rows(k0, kc, t.b.ldb, t.b.n, bbuf.data()), t.b.B.ld_of(t.b.ldb, t.b.n), t.b.C, t.b.ldc,
                        k0 > 0);
    float* o1 = odd.data();
    for (const SumPart& s : job.sums) {
      const float* block = s.D.rows(k0, kc, s.ld, s.n, sbuf.data());
      const int64_t ld = s.D.ld_of(s.ld, s.n);
      for (int j = 0; j < s.n; j += W) {
        const int m = std::min(W, s.n - j);
        vf s0 = load_m(s.out + j, m), s1 = load_m(o1 + j, m);
        const float* D = block + j;
        int r = 0;
        for (; r + 1 < kc; r += 2) {
          s0 += load_m(D + r * ld, m);
          s1 += load_m(D + (r + 1) * ld, m);
        }
        if (r < kc) s0 += load_m(D + r * ld, m);  // only in the last block (KC is even)
        store_m(s.out + j, s0, m);
        store_m(o1 + j, s1, m);
      }
      o1 += s.n;
    }
  }
  for (const TnPart& t : job.tn)
    if (t.b.mask)
      for (int i = 0; i < t.m; ++i)
        for (int j = 0; j < t.b.n; ++j) t.b.C[i * t.b.ldc + j] *= t.b.mask[i * t.b.ldc + j];
  const float* o1 = odd.data();
  for (const SumPart& s : job.sums) {
    for (int j = 0; j < s.n; j += W) {
      const int m = std::min(W, s.n - j);
      store_m(s.out + j, load_m(s.out + j, m) + load_m(o1 + j, m), m);
    }
    o1 += s.n;
  }
}

// The output rows [0, m) of one A: the products against each B in `bs` (B, ldb, n, C, ldc, mask:
// C's row 0 is output row 0) and, with sum_out, the column sums of A into sum_out. Added to the
// last job while it stays within kJobRows rows, else to new jobs of at most kJobRows rows each.

void add_rows(std::vector<PostJob>& jobs, Saved A, int64_t lda, int m, const std::vector<BOperand>& bs,
              float* sum_out) {
  for (int m0 = 0; m0 < m; m0 += kJobRows) {
    const int mm = std::min(kJobRows, m - m0);
    if (jobs.empty() || jobs.back().rows + mm > kJobRows) jobs.emplace_back();
    PostJob& j = jobs.back();
    for (const BOperand& b : bs)
      j.tn.push_back(
          {A.at(m0), lda, mm, {b.B, b.ldb, b.n, b.C + m0 * b.ldc, b.ldc, b.mask ? b.mask + m0 * b.ldc : nullptr}});
    if (sum_out) j.sums.push_back({A.at(m0), lda, mm, sum_out + m0});
    j.rows += mm;
  }
}

}  // namespace
NCPS_ISA_END

// ---- backward -----------------------------------------------------------------------------------

template <>
void backward<NCPS_ISA_TAG>(const Plan& p, const std::vector<const float*>& in, const float* ws,
                            const common::Rows& dstates, const common::Rows& dcells, const std::vector<float*>& grads,
                            float* scratch, bool need_dx, bool need_weights, bool need_dt) {
  const int B = p.B, T = p.T, I = p.I, N = p.N;
  const int64_t TB = static_cast<int64_t>(T) * B;
  const bool mixed = p.cfg.mixed;
  const int mode = p.cfg.mode, act = p.cfg.act;
  // The saved arrays at workspace offset `off`: float32, or a half model's half copies.
  auto saved = [&p, ws](int64_t off) {
    return p.copies() ? Saved(reinterpret_cast<const uint16_t*>(ws + off), p.act) : Saved(ws + off);
  };
  const float* XT = ws + p.xt_off;
  const float* DT = ws + p.dt_off;
  const Saved HH = saved(p.hh_sav);
  const Saved HL = mixed ? saved(p.hl_sav) : Saved();
  const Saved GT = mixed ? saved(p.gates_sav) : Saved();
  const float* CC = mixed ? ws + p.cc_off : nullptr;
  // Every gradient is overwritten below except the masks'.
  for (const Unit& U : p.units)
    if (U.mask >= 0) std::memset(grads[U.mask], 0, sizeof(float) * U.n * U.head_in);

  const std::vector<UnitW> uw = make_weights(p, in, /*pack=*/false, /*backward=*/true);
  Lin lwx, lwh;
  if (mixed) std::tie(lwx, lwh) = lstm_weights(p, in);
  const size_t nu = p.units.size();
  // Gradients w.r.t. every stored pre-activation, (T, B, .), carved from `scratch` (a buffer of
  // the primitives' workspace pool, reused across calls: no page faults or zeroing per call).
  float* next = scratch;
  auto take = [&next](int64_t n) {
    float* o = next;
    next += n;
    return o;
  };
  // A bfloat16 model's are bfloat16 arrays (problem.h: Plan::grads).
  auto grad = [&](int64_t n) {
    Grad g;
    if (p.grads == common::Storage::f32) {
      g.f = take(n);
    } else {
      g.h = reinterpret_cast<uint16_t*>(take((n + 1) / 2));
      g.sink = {g.h, p.grads, common::bf16_instructions()};
    }
    return g;
  };
  std::vector<Grad> DH(nu);
  std::vector<std::vector<Grad>> DA(nu);
  int maxw = 1;
  for (size_t u = 0; u < nu; ++u) {
    const Unit& U = p.units[u];
    DH[u] = grad(TB * U.hn);
    for (int w : U.widths) {
      DA[u].push_back(grad(TB * w));
      maxw = std::max(maxw, w);
    }
  }
  const Grad DG = mixed ? grad(TB * 4 * N) : Grad();
  float* DDT = take(TB);
  // When the forward folded the time heads (one dt for the call, weights.h: fold_time_heads), H's t_a
  // block holds pa dt + pb, not pa: pa (TB x n per unit, in TA) is recomputed after the sweep,
  // one product over all rows, and the dL/d dt terms (dgp . pa) added then.
  float dt_value = 0.0f;
  const bool fold = fold_time_heads(p, in[2], in[1], dt_value);
  std::vector<float*> DDTU(nu, nullptr);   // each unit's dL/d dt terms (fold)
  const bool recompute = fold && need_dt;  // pa is only needed for dL/d dt
  if (recompute)
    for (size_t u = 0; u < nu; ++u) DDTU[u] = take(TB);
  const double flops = 2.0 * step_flops(p) * TB;
  const int nt = common::threads_for(B, flops, kMinParallelFlops);
  int64_t pure_len = 0;
  for (const Unit& U : p.units) pure_len += 2 * U.n;
  const int nc = batch_chunks(B, nt);
  // Built in place: a copy of a std::vector<float> here is a standard-library template compiled for
  // this target, which the linker may take for the baseline files' copies (common/isa.h).
  std::vector<std::vector<float>> pure_acc(nc);
  for (auto& a : pure_acc) a.resize(mode == PURE ? pure_len : 0);  // zeros

  const bool prefetch = prefetch_steps(p.ws_size);
  const Saved dS = saved_rows(dstates), dC = saved_rows(dcells);
  int maxhs = 1;
  for (const Unit& U : p.units) maxhs = std::max(maxhs, U.hs);
  auto run_tile = [&](int b0, int b1, float* acc) {
    const int nb = b1 - b0;
    std::vector<float> G(static_cast<size_t>(nb) * N), carry(static_cast<size_t>(nb) * N),
        dc(static_cast<size_t>(nb) * N), dz0(static_cast<size_t>(nb) * maxw), dz1(static_cast<size_t>(nb) * maxw);
    // One step's rows of the half copies, widened, and of the half gradients, in float32 (empty for
    // a float32 model).
    const size_t wide = p.copies() ? static_cast<size_t>(nb) : 0;
    const size_t gwide = p.grads == common::Storage::f32 ? 0 : static_cast<size_t>(nb);
    std::vector<float> hs_buf(wide * maxhs), a_buf(wide * maxw), z_buf(wide * maxw), g_buf(mixed ? wide * 4 * N : 0);
    std::vector<float> dh_buf(gwide * maxhs), da_buf(gwide * maxw), dg_buf(mixed ? gwide * 4 * N : 0);
    std::vector<float> ds_buf(N), dc_buf(N);  // a row of a half cotangent, widened
    for (int t = T - 1; t >= 0; --t) {
      const int64_t r = static_cast<int64_t>(t) * B + b0;
      const float* dtr = DT + r;
      // Past the caches (chunks.h: prefetch_steps), the previous step's rows of dstates and of the
      // heads' workspace, read next, are prefetched row by row as this step's are used: two
      // thirds of the sweep's time at B 512, T 100 had been those loads waiting for memory.
      const bool pre = prefetch && t > 0;
      std::fill(DDT + r, DDT + r + nb, 0.0f);
      for (int b = 0; b < nb; ++b) {
        const int64_t bt = static_cast<int64_t>(b0 + b) * T + t;  // the row of (b, t) in (B, T, N)
        const float* ds = dS.rows(bt, 1, N, N, ds_buf.data());
        if (pre && dS.f) prefetch_floats(ds - N, N);
        if (mixed && dcells.data) {  // dc holds dL/dc_t (the cell state after step t): add this step's cotangent
          float* d = dc.data() + static_cast<int64_t>(b) * N;
          const float* dcr = dC.rows(bt, 1, N, N, dc_buf.data());
          for (int j = 0; j < N; j += W) {
            const int m = std::min(W, N - j);
            store_m(d + j, load_m(d + j, m) + load_m(dcr + j, m), m);
          }
        }
        float* g = G.data() + static_cast<int64_t>(b) * N;
        const float* c = carry.data() + static_cast<int64_t>(b) * N;
        for (int j = 0; j < N; j += W) {
          const int m = std::min(W, N - j);
          store_m(g + j, load_m(ds + j, m) + load_m(c + j, m), m);
        }
      }
      for (size_t uu = nu; uu-- > 0;) {
        const Unit& U = p.units[uu];
        const UnitW& w = uw[uu];
        float* dH = DH[uu].rows(r, U.hn, dh_buf.data());
        float* accA = nullptr;
        float* accW = nullptr;
        if (mode == PURE) {
          int64_t o = 0;
          for (size_t v = 0; v < uu; ++v) o += 2 * p.units[v].n;
          accA = acc + o;
          accW = acc + o + U.n;
        }
        const Saved heads = saved(U.heads_sav);
        const float* Hs = heads.rows(r, nb, U.hs, U.hs, hs_buf.data());
        heads_bwd(mode, nb, U.n, Hs, U.hs, dtr, G.data() + U.off, N, dH, U.hn, fold ? nullptr : DDT + r, w.w_tau, w.A,
                  accA, accW, pre && heads.f ? Hs - static_cast<int64_t>(B) * U.hs : nullptr);
        DH[uu].store(r, nb, U.hn, dH);
        const float* D1 = dH;
        int64_t ld1 = U.hn;
        if (!U.widths.empty()) {
          const int L = static_cast<int>(U.widths.size());
          float* dz = dz0.data();
          float* dzn = dz1.data();
          w.heads.bwd(nb, dH, U.hn, 0, U.head_in, dz, U.head_in, false);
          float* da = nullptr;
          for (int l = L - 1; l >= 0; --l) {
            const int wl = U.widths[l];
            da = DA[uu][l].rows(r, wl, da_buf.data());
            act_grad_rows(act, nb, wl, saved(U.a_sav[l]).rows(r, nb, wl, wl, a_buf.data()),
                          saved(U.z_sav[l]).rows(r, nb, wl, wl, z_buf.data()), dz, wl, da);
            DA[uu][l].store(r, nb, wl, da);
            if (l > 0) {
              w.bb[l].bwd(nb, da, wl, 0, U.widths[l - 1], dzn, U.widths[l - 1], false);
              std::swap(dz, dzn);
            }
          }
          D1 = da;  // layer 0's
          ld1 = U.widths[0];
        }
        const Lin& F = w.first();
        if (uu > 0) {
          // G's columns of this unit were consumed by heads_bwd above: zeroed, they take dL/dh_t's
          // own part, and the columns before them (the previous unit's new state, this unit's
          // input; make_plan chains the units in adjacent columns) are accumulated into, in one
          // product over [input, own state]: 56 and 30 columns on the NCP layers (4 and 2 vectors)
          // instead of 22 + 34 and 8 + 22 (5 and 3). Same sums in the same order as two products.
          for (int b = 0; b < nb; ++b) std::fill_n(G.data() + static_cast<int64_t>(b) * N + U.off, U.n, 0.0f);
          F.bwd(nb, D1, ld1, 0, U.in + U.n, G.data() + p.units[uu - 1].off, N, true);
        } else {
          F.bwd(nb, D1, ld1, U.in, U.n, G.data() + U.off, N, false);
        }
      }
      // G now holds dL/dh_t (of the LSTM's output when mixed).
      if (mixed) {
        float* dg = DG.rows(r, 4 * N, dg_buf.data());
        lstm_bwd(nb, N, GT.rows(r, nb, 4 * N, 4 * N, g_buf.data()), CC + r * N, CC + (r + B) * N, G.data(), dc.data(),
                 dg);
        DG.store(r, nb, 4 * N, dg);
        lwh.bwd(nb, dg, 4 * N, 0, N, carry.data(), N, false);
      } else {
        std::swap(carry, G);
      }
    }
    std::memcpy(grads[1] + static_cast<int64_t>(b0) * N, carry.data(), sizeof(float) * nb * N);
    if (mixed) std::memcpy(grads[p.c0] + static_cast<int64_t>(b0) * N, dc.data(), sizeof(float) * nb * N);
  };
  // Chunk c of nc, whichever thread runs it (so the pure-mode sums do not depend on the threads).
  run_batch_chunks(B, nt, nc, [&](int c, int b0, int b1) { run_tile(b0, b1, pure_acc[c].data()); });

  // Weight, bias and input gradients: big products over all T*B rows, each job one pass over
  // them (see run_post_job). new_group() starts a fresh job per operand-sharing group, so that no
  // job mixes rows of products that share no operand.
  std::vector<PostJob> post;
  auto new_group = [&post] {
    if (!post.empty() && post.back().rows > 0) post.emplace_back();
  };
  std::vector<std::function<void()>> jobs, finish;  // finish: after all jobs, serially
  std::vector<std::vector<float>> head_scratch(nu);
  const int K = static_cast<int>(TB);
  for (size_t u = 0; need_weights && u < nu; ++u) {
    const Unit& U = p.units[u];
    const Saved INP = u == 0 ? Saved(XT) : HH.at(static_cast<int64_t>(B) * N + p.units[u - 1].off);
    const int64_t ldi = u == 0 ? I : N;
    const Saved HIN = (mixed ? HL : HH).at(U.off);
    const float* mask = U.mask >= 0 ? in[U.mask] : nullptr;
    const int nh = mode == PURE ? 1 : 4;
    // The heads: input is the last backbone layer, or [inp, h] without backbone.
    if (U.widths.empty()) {
      // All heads at once, transposed: S = [inp, h]^T dH (K x hn) and its column sums, then
      // scattered into each head's (n, K) gradient (times the mask). The narrow per-head products
      // (n rows by in or n columns: 16..34 on an NCP layer) ran mostly in partial tiles.
      std::vector<float>& S = head_scratch[u];
      S.resize(static_cast<size_t>(U.K + 1) * U.hn);
      float* Sw = S.data();
      float* Sb = Sw + static_cast<int64_t>(U.K) * U.hn;
      new_group();
      add_rows(post, INP, ldi, U.in, {{DH[u].saved(), U.hn, U.hn, Sw, U.hn, nullptr}}, nullptr);
      add_rows(post, HIN, N, U.n, {{DH[u].saved(), U.hn, U.hn, Sw + static_cast<int64_t>(U.in) * U.hn, U.hn, nullptr}},
               nullptr);
      // The column sums of dH go with the last rows' job (which reads dH already).
      post.back().sums.push_back({DH[u].saved(), U.hn, U.hn, Sb});
      finish.emplace_back([=, &U] {
        for (int k = 0; k < nh; ++k) {
          float* dW = grads[U.head_w[k]];
          const float* mk = k < 2 ? mask : nullptr;
          for (int i = 0; i < U.n; ++i)
            for (int c = 0; c < U.K; ++c) {
              const float v = Sw[static_cast<int64_t>(c) * U.hn + k * U.n + i];
              dW[static_cast<int64_t>(i) * U.K + c] = mk ? v * mk[static_cast<int64_t>(i) * U.K + c] : v;
            }
          std::copy_n(Sb + k * U.n, U.n, grads[U.head_b[k]]);
        }
      });
    } else {
      // Every head against the last backbone layer: kJobRows rows of heads per job share its reads.
      const int L = static_cast<int>(U.widths.size());
      new_group();
      for (int k = 0; k < nh; ++k)
        add_rows(post, DH[u].saved().at(k * U.n), U.hn, U.n,
                 {{saved(U.z_sav[L - 1]), U.widths[L - 1], U.head_in, grads[U.head_w[k]], U.head_in,
                   k < 2 ? mask : nullptr}},
                 grads[U.head_b[k]]);
    }
    for (size_t l = 0; l < U.widths.size(); ++l) {
      const int wl = U.widths[l];
      float* dW = grads[U.bw[l]];
      new_group();
      if (l == 0)
        add_rows(post, DA[u][l].saved(), wl, wl,
                 {{INP, ldi, U.in, dW, U.K, nullptr}, {HIN, N, U.n, dW + U.in, U.K, nullptr}}, grads[U.bb[l]]);
      else
        add_rows(post, DA[u][l].saved(), wl, wl,
                 {{saved(U.z_sav[l - 1]), U.widths[l - 1], U.widths[l - 1], dW, U.widths[l - 1], nullptr}},
                 grads[U.bb[l]]);
    }
  }
  if (mixed && need_weights) {
    new_group();
    add_rows(post, DG.saved(), 4 * N, 4 * N,
             {{XT, I, I, grads[p.lwx], I, nullptr}, {HH, N, N, grads[p.lwh], N, nullptr}}, grads[p.lb]);
  }
  for (const PostJob& j : post)
    if (j.rows > 0) jobs.emplace_back([&j, K] { run_post_job(j, K); });
  // dx (B, T, I): per time chunk, rows b of step t go to dx[b, t].
  if (need_dx) {
    const Unit& U0 = p.units[0];
    const Lin& F = uw[0].first();
    const Saved D1 = U0.widths.empty() ? DH[0].saved() : DA[0][0].saved();
    const int ld1 = U0.widths.empty() ? U0.hn : U0.widths[0];
    const Saved dgp = DG.saved();
    const bool lstm = mixed;
    float* dx = grads[0];
    const int tchunk = std::max(1, 256 / std::max(1, B));
    for (int t0 = 0; t0 < T; t0 += tchunk) {
      const int t1 = std::min(T, t0 + tchunk);
      jobs.emplace_back([=, &F, &lwx] {
        std::vector<float> d1_buf(D1.h ? static_cast<size_t>(B) * ld1 : 0),
            dg_buf(lstm && dgp.h ? static_cast<size_t>(B) * 4 * N : 0);
        for (int t = t0; t < t1; ++t) {
          const int64_t r = static_cast<int64_t>(t) * B;
          F.bwd(B, D1.rows(r, B, ld1, ld1, d1_buf.data()), ld1, 0, I, dx + static_cast<int64_t>(t) * I,
                static_cast<int64_t>(T) * I, false);
          if (lstm)
            lwx.bwd(B, dgp.rows(r, B, 4 * N, 4 * N, dg_buf.data()), 4 * N, 0, I, dx + static_cast<int64_t>(t) * I,
                    static_cast<int64_t>(T) * I, true);
        }
      });
    }
  }
  // pa = [inp, h] W_a^T + b_a of every row (fold), in blocks of rows beside the other products,
  // and each row's dgp . pa (a vector sum over the unit's neurons, then one tree sum per row: a
  // serial sum per lane had cost more than the products).
  std::vector<Lin> la(recompute ? nu : 0);
  for (size_t u = 0; u < la.size(); ++u) {
    const Unit& U = p.units[u];
    la[u].part[0] = in[U.head_w[2]];
    la[u].out = U.n;
    la[u].in = U.head_in;
    la[u].pack();
    // The heads' input: [inp, h] without a backbone, else the last backbone layer.
    const int wl = U.widths.empty() ? 0 : U.widths.back();
    const Saved INP = wl       ? saved(U.z_sav.back())
                      : u == 0 ? Saved(XT)
                               : HH.at(static_cast<int64_t>(B) * N + p.units[u - 1].off);
    const int64_t ldi = wl ? wl : u == 0 ? I : N;
    const int k1 = wl ? wl : U.in;
    const Saved HIN = wl ? Saved() : (mixed ? HL : HH).at(U.off);
    const int k2 = wl ? 0 : U.n;
    for (int64_t r0 = 0; r0 < TB; r0 += kJobRows) {
      const int rows = static_cast<int>(std::min<int64_t>(kJobRows, TB - r0));
      jobs.emplace_back([=, &U, &la, &in, &DH, &DDTU] {
        std::vector<float> pa(static_cast<size_t>(rows) * U.n);
        std::vector<float> ibuf(INP.h ? static_cast<size_t>(rows) * k1 : 0),
            hbuf(HIN.h ? static_cast<size_t>(rows) * k2 : 0);
        const bool has_h = HIN.f || HIN.h;
        la[u].fwd_bias(rows, INP.rows(r0, rows, ldi, k1, ibuf.data()), INP.ld_of(ldi, k1), k1,
                       has_h ? HIN.rows(r0, rows, N, k2, hbuf.data()) : nullptr, HIN.ld_of(N, k2), k2, 0,
                       in[U.head_b[2]], pa.data(), U.n);
        // The gate's gradients of these rows (dH's last n columns), widened from a half model's.
        const Saved dgs = DH[u].saved().at(3 * U.n);
        std::vector<float> gbuf(dgs.h ? static_cast<size_t>(rows) * U.n : 0);
        const float* dg_rows = dgs.rows(r0, rows, U.hn, U.n, gbuf.data());
        const int64_t ldg = dgs.ld_of(U.hn, U.n);
        for (int i = 0; i < rows; ++i) {
          const float* dgp = dg_rows + i * ldg;
          const float* pr = pa.data() + static_cast<int64_t>(i) * U.n;
          vf acc{};
          for (int j = 0; j < U.n; j += W) {
            const int m = std::min(W, U.n - j);
            acc += load_m(dgp + j, m) * load_m(pr + j, m);
          }
          DDTU[u][r0 + i] = hsum_tree(acc);
        }
      });
    }
  }
  common::run_jobs(jobs, common::threads_for(static_cast<int64_t>(jobs.size()), flops, kMinParallelFlops));
  for (auto& f : finish) f();
  if (recompute)  // the units last to first, as heads_bwd adds them
    for (int64_t r = 0; r < TB; ++r)
      for (size_t uu = nu; uu-- > 0;) DDT[r] += DDTU[uu][r];

  // dt (B, T) and the pure-mode parameters.
  if (need_dt)
    for (int b = 0; b < B; ++b)
      for (int t = 0; t < T; ++t) grads[2][static_cast<int64_t>(b) * T + t] = DDT[static_cast<int64_t>(t) * B + b];
  if (mode == PURE && need_weights) {
    int64_t o = 0;
    for (const Unit& U : p.units) {
      float* gA = grads[U.A];
      float* gW = grads[U.w_tau];
      for (int j = 0; j < U.n; ++j) {
        float sa = 0.0f, sw = 0.0f;
        for (int th = 0; th < nc; ++th) {
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

}  // namespace ncps::cfc::cpu
