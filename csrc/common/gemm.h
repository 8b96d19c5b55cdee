// Small dense float32 GEMMs (used by the fused CfC kernels): register-blocked micro-kernels written
// with GCC/Clang vector extensions (lowered to zmm/ymm/xmm/NEON per kernel target, common/isa.h).
//
// Why not a BLAS: MLX's Linux wheel bundles netlib reference BLAS (~2.5 GFLOP/s). The prefixed
// OpenBLAS wheel (scipy-openblas32, scipy_cblas_sgemm) is fast, but on the shapes of the CfC loop
// these kernels match or beat it, measured with benchmarks/gemm_bench.cpp (1 thread, AVX-512
// dev VM, GFLOP/s, ours / OpenBLAS 0.3.34): per-step 32x64->128 115/115, 32x128->256 115/84,
// 16x128->256 115/116, 16x256->128 117/117; wired 16x49->132 98/104; hoisted 3200x16->128
// 100/80; post-loop weight gradients (K = 3200 rows) 256x128 99/77, 128x80 114/92, 256x16 113/26;
// batch-1 step 1x128->256 33/23 (dot-product form). No extra runtime dependency (a vendored
// OpenBLAS would also have to be kept off MLX's own cblas symbols), and the tiles inline into the
// kernels. The 8 x 48 tile (24 zmm accumulators) was chosen over 8x32, 6x64, 4x64, 12x32 and the
// 256-bit variants by the same benchmark.
// Conventions: row-major C (M x N, leading dimension ldc) = [C +] A * B, with
//  - A addressed as A[i * rsA + k * csA] (so both A and A^T are "free": NN uses rsA = lda,
//    csA = 1; TN, C = A^T B, uses rsA = 1, csA = lda),
//  - B row-major K x N with leading dimension ldb.
// Any M, N, K (column tails use masked loads/stores). Serial: callers thread over tiles.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "common/simd.h"

namespace ncps::common {
NCPS_ISA_BEGIN

// Register tile (MR rows x NV vectors) per target.
#if defined(__AVX512F__)
constexpr int MR = 8;
constexpr int NV = 3;  // 8 x 48 floats = 24 zmm accumulators
#elif defined(__AVX__)
constexpr int MR = 6;
constexpr int NV = 2;  // 12 ymm accumulators
#else
constexpr int MR = 4;
constexpr int NV = 2;  // 8 xmm accumulators (SSE2 / NEON)
#endif

// c += A[0:R, 0:K] * B[0:K, tile columns] (one k panel of the tile below).
template <int R, int NVEC, bool TAIL>
NCPS_INLINE void tile_panel(vf<> (&c)[R][NVEC], int K, const float* __restrict A, int64_t rsA, int64_t csA,
                            const float* __restrict B, int64_t ldb, int tail) {
  for (int k = 0; k < K; ++k) {
    const float* b = B + k * ldb;
    const float* a = A + k * csA;
    vf<> bv[NVEC];
#pragma GCC unroll 4
    for (int v = 0; v < NVEC; ++v) bv[v] = (TAIL && v == NVEC - 1) ? load_n(b + v * W, tail) : load(b + v * W);
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i) {
      const vf<> ai = splat(a[i * rsA]);
#pragma GCC unroll 4
      for (int v = 0; v < NVEC; ++v) c[i][v] += ai * bv[v];
    }
  }
}

// The register tile: C[0:R, 0:NVEC*W] (the last vector only `tail` lanes wide when TAIL). One
// instantiation per (R, NVEC, TAIL) keeps all R * NVEC accumulators in registers (a runtime
// tail branch with a shared epilogue made GCC spill them to the stack on every k).
// A's K columns may come from two places: the first K1 from A1 (row stride rsA1), the next K2
// from A2 (row stride rsA2), both with column stride csA, against the K1 + K2 contiguous rows of
// B. (A recurrent layer's input is [x_t, h_t], two separate arrays: one tile, no copy.) The
// accumulators start from `bias` (a row of the tile's columns, added to every row) when given.
template <int R, int NVEC, bool TAIL>
NCPS_INLINE void tile(int K1, const float* __restrict A1, int64_t rsA1, int K2, const float* __restrict A2,
                      int64_t rsA2, int64_t csA, const float* __restrict B, int64_t ldb, float* __restrict C,
                      int64_t ldc, int tail, bool acc, const float* __restrict bias) {
  vf<> c[R][NVEC];
  if (bias) {
    vf<> bv[NVEC];
#pragma GCC unroll 4
    for (int v = 0; v < NVEC; ++v) bv[v] = (TAIL && v == NVEC - 1) ? load_n(bias + v * W, tail) : load(bias + v * W);
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
      for (int v = 0; v < NVEC; ++v) c[i][v] = bv[v];
  } else {
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
      for (int v = 0; v < NVEC; ++v) c[i][v] = vf<>{};
  }
  tile_panel<R, NVEC, TAIL>(c, K1, A1, rsA1, csA, B, ldb, tail);
  if (K2 > 0) tile_panel<R, NVEC, TAIL>(c, K2, A2, rsA2, csA, B + K1 * ldb, ldb, tail);
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i) {
    float* ci = C + i * ldc;
#pragma GCC unroll 4
    for (int v = 0; v < NVEC; ++v) {
      vf<> r = c[i][v];
      if (TAIL && v == NVEC - 1) {
        if (acc) r += load_n(ci + v * W, tail);
        store_n(ci + v * W, r, tail);
      } else {
        if (acc) r += load(ci + v * W);
        store(ci + v * W, r);
      }
    }
  }
}

using TileFn = void (*)(int, const float*, int64_t, int, const float*, int64_t, int64_t, const float*, int64_t, float*,
                        int64_t, int, bool, const float*);

template <int R, int NVEC, bool TAIL>
void tile_fn(int K1, const float* A1, int64_t rsA1, int K2, const float* A2, int64_t rsA2, int64_t csA, const float* B,
             int64_t ldb, float* C, int64_t ldc, int tail, bool acc, const float* bias) {
  tile<R, NVEC, TAIL>(K1, A1, rsA1, K2, A2, rsA2, csA, B, ldb, C, ldc, tail, acc, bias);
}

// table[r - 1]: the tile of r rows and NVEC vectors.
template <int NVEC, bool TAIL, int... Rs>
struct TileRow {
  static constexpr TileFn fns[sizeof...(Rs)] = {&tile_fn<Rs, NVEC, TAIL>...};
};
template <int NVEC, bool TAIL, int... Rs>
constexpr TileFn TileRow<NVEC, TAIL, Rs...>::fns[sizeof...(Rs)];

template <int NVEC, bool TAIL>
NCPS_INLINE const TileFn* tile_row() {
  static_assert(MR <= 8, "extend the row list");
  if constexpr (MR == 8)
    return TileRow<NVEC, TAIL, 1, 2, 3, 4, 5, 6, 7, 8>::fns;
  else if constexpr (MR == 6)
    return TileRow<NVEC, TAIL, 1, 2, 3, 4, 5, 6>::fns;
  else if constexpr (MR == 4)
    return TileRow<NVEC, TAIL, 1, 2, 3, 4>::fns;
  else
    return TileRow<NVEC, TAIL, 1, 2, 3>::fns;
}

template <bool TAIL>
NCPS_INLINE const TileFn* tiles_for_(int nv) {
  if constexpr (NV >= 4)
    if (nv == 4) return tile_row<4, TAIL>();
  if constexpr (NV >= 3)
    if (nv == 3) return tile_row<3, TAIL>();
  if (nv == 2) return tile_row<2, TAIL>();
  return tile_row<1, TAIL>();
}

NCPS_INLINE const TileFn* tiles_for(int nv, bool tail) { return tail ? tiles_for_<true>(nv) : tiles_for_<false>(nv); }

// K-panel depth: keeps a KC x (NV*W) panel of B in L1 while the row tiles sweep over it.
constexpr int KC = 256;

// C[M x N] (+)= [bias +] [A1 | A2] * B over the column range [n0, n1) of C, B and bias (the
// parallel drivers split it): A1 gives the first K1 columns of A (row stride rsA1), A2 the next K2
// (row stride rsA2; none when K2 = 0), both with column stride csA; B has K1 + K2 rows.
inline void gemm_cols2(int M, int n0, int n1, int K1, const float* A1, int64_t rsA1, int K2, const float* A2,
                       int64_t rsA2, int64_t csA, const float* B, int64_t ldb, float* C, int64_t ldc, bool accumulate,
                       const float* bias = nullptr) {
  if (M <= 0 || n1 <= n0) return;
  const int K = K1 + K2;
  if (K <= 0) {
    for (int i = 0; i < M; ++i) {
      float* ci = C + i * ldc;
      for (int j = n0; j < n1; ++j) ci[j] = (accumulate ? ci[j] : 0.0f) + (bias ? bias[j] : 0.0f);
    }
    return;
  }
  for (int k0 = 0; k0 < K; k0 += KC) {
    const int kc = std::min(KC, K - k0);
    // This panel's columns of A: [k0, k0 + kc) of the concatenation, split between A1 and A2.
    const int k1 = std::max(0, std::min(kc, K1 - k0));
    const int s2 = std::max(0, k0 - K1);  // first A2 column in the panel
    const float* A1k = A1 + std::min(k0, K1) * csA;
    const float* A2k = k1 < kc ? A2 + s2 * csA : nullptr;
    const bool acc = accumulate || k0 > 0;
    const float* bk = k0 == 0 ? bias : nullptr;
    const float* Bk = B + k0 * ldb;
    for (int j0 = n0; j0 < n1;) {
      // Column blocks of NV vectors, except that the last NV + 1 vectors (NV = 3) go as 2 + 2
      // rather than 3 + 1; the very last vector may be partial.
      const int left = (n1 - j0 + W - 1) / W;
      const int nv = left > NV ? (left == NV + 1 && NV > 2 ? 2 : NV) : left;
      const int nc = std::min(nv * W, n1 - j0);
      const int tail = nc % W;
      const TileFn* table = tiles_for(nv, tail > 0);
      for (int i0 = 0; i0 < M; i0 += MR) {
        const int r = std::min(MR, M - i0);
        table[r - 1](k1, A1k + i0 * rsA1, rsA1, kc - k1, A2k ? A2k + i0 * rsA2 : nullptr, rsA2, csA, Bk + j0, ldb,
                     C + i0 * ldc + j0, ldc, tail, acc, bk ? bk + j0 : nullptr);
      }
      j0 += nc;
    }
  }
}

// C[M x N] (+)= A * B over the column range [n0, n1) of C and B (the parallel drivers split it).
inline void gemm_cols(int M, int n0, int n1, int K, const float* A, int64_t rsA, int64_t csA, const float* B,
                      int64_t ldb, float* C, int64_t ldc, bool accumulate) {
  gemm_cols2(M, n0, n1, K, A, rsA, 0, nullptr, 0, csA, B, ldb, C, ldc, accumulate);
}

// C (M x N) (+)= A (M x K, leading dim lda) * B (K x N, leading dim ldb).
inline void gemm_nn(int M, int N, int K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
                    int64_t ldc, bool accumulate) {
  gemm_cols(M, 0, N, K, A, lda, 1, B, ldb, C, ldc, accumulate);
}

// C (M x N) = bias + [A1 | A2] * B: A1 (M x K1, lda1), A2 (M x K2, lda2), B ((K1 + K2) x N, ldb),
// bias (N) added to every row (or null), accumulating into C when `accumulate`.
inline void gemm_nn2(int M, int N, int K1, const float* A1, int64_t lda1, int K2, const float* A2, int64_t lda2,
                     const float* B, int64_t ldb, const float* bias, float* C, int64_t ldc, bool accumulate) {
  gemm_cols2(M, 0, N, K1, A1, lda1, K2, A2, lda2, 1, B, ldb, C, ldc, accumulate, bias);
}

// C (M x N) (+)= A^T * B with A stored K x M (leading dim lda), B K x N: weight gradients
// dW = dY^T X summed over all (batch, time) rows.
inline void gemm_tn(int M, int N, int K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
                    int64_t ldc, bool accumulate) {
  gemm_cols(M, 0, N, K, A, 1, lda, B, ldb, C, ldc, accumulate);
}

// C (M x N) (+)= A (M x K) * Wt^T with Wt stored N x K (torch/MLX Linear layout, leading dim ldw):
// dot products along K. For tiny M (a streaming step at batch 1), where transposing the weight
// once would cost more than the product itself.
inline void gemm_nt(int M, int N, int K, const float* A, int64_t lda, const float* Wt, int64_t ldw, float* C,
                    int64_t ldc, bool accumulate) {
  const int kv = K - K % W;
  const int kt = K % W;
  for (int i = 0; i < M; ++i) {
    const float* a = A + i * lda;
    int j = 0;
    for (; j + 4 <= N; j += 4) {
      const float* w0 = Wt + (j + 0) * ldw;
      const float* w1 = Wt + (j + 1) * ldw;
      const float* w2 = Wt + (j + 2) * ldw;
      const float* w3 = Wt + (j + 3) * ldw;
      vf<> s0{}, s1{}, s2{}, s3{};
      for (int k = 0; k < kv; k += W) {
        const vf<> av = load(a + k);
        s0 += av * load(w0 + k);
        s1 += av * load(w1 + k);
        s2 += av * load(w2 + k);
        s3 += av * load(w3 + k);
      }
      if (kt) {
        const vf<> av = load_n(a + kv, kt);
        s0 += av * load_n(w0 + kv, kt);
        s1 += av * load_n(w1 + kv, kt);
        s2 += av * load_n(w2 + kv, kt);
        s3 += av * load_n(w3 + kv, kt);
      }
      float r[4] = {0, 0, 0, 0};
      for (int l = 0; l < W; ++l) {
        r[0] += s0[l];
        r[1] += s1[l];
        r[2] += s2[l];
        r[3] += s3[l];
      }
      float* c = C + i * ldc + j;
      for (int q = 0; q < 4; ++q) c[q] = accumulate ? c[q] + r[q] : r[q];
    }
    for (; j < N; ++j) {
      const float* w0 = Wt + j * ldw;
      vf<> s0{};
      for (int k = 0; k < kv; k += W) s0 += load(a + k) * load(w0 + k);
      if (kt) s0 += load_n(a + kv, kt) * load_n(w0 + kv, kt);
      float r = 0.0f;
      for (int l = 0; l < W; ++l) r += s0[l];
      C[i * ldc + j] = accumulate ? C[i * ldc + j] + r : r;
    }
  }
}

// dst (cols x rows, leading dim ldd) = src^T, src rows x cols (leading dim lds). Blocked.
inline void transpose(int rows, int cols, const float* src, int64_t lds, float* dst, int64_t ldd) {
  constexpr int BS = 16;
  for (int i0 = 0; i0 < rows; i0 += BS)
    for (int j0 = 0; j0 < cols; j0 += BS) {
      const int i1 = std::min(rows, i0 + BS), j1 = std::min(cols, j0 + BS);
      for (int i = i0; i < i1; ++i)
        for (int j = j0; j < j1; ++j) dst[j * ldd + i] = src[i * lds + j];
    }
}

NCPS_ISA_END
}  // namespace ncps::common
