// The machine's limits for the kernels of this package, measured by benchmarks/run.py (section
// "limits"), which compiles this file with the compiler at hand:
//   c++ -O3 -march=native -std=gnu++20 -pthread -Icsrc benchmarks/limits.cpp -o limits
//   ./limits THREADS SECONDS
// It prints one JSON object with two rates, each the best of several timed rounds:
//
//  - "gemm_gflops": a large float32 GEMM (C = A B, 1536 x 1536 x 1536, 2 M N K flops) with the
//    register-blocked tiles of csrc/common/gemm.h (the ones the fused CfC kernels use), the
//    columns of C split over THREADS threads.
//
//  - "synapse_evals_per_s": the best case of the LTC inner loop (csrc/ltc/cpu/sequence.h,
//    substep): per synapse k -> i and batch lane, u = c - sl * v[src] (one FMA), the sigmoid
//    1 / (1 + 2^u) (common/simd.h's vsigmoid_log2), a = w * sigmoid, num += a * erev, den += a.
//    Here at the full native SIMD width (W lanes), with 64 synapses per destination held in L1 and
//    the states in registers' reach, no divisions per neuron, no gathers of inputs, no tails: the
//    rate a perfect LTC kernel could reach on this machine, in lane-synapse evaluations per
//    second (one batch element's synapse per evaluation), THREADS threads.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "common/gemm.h"
#include "common/simd.h"

using namespace ncps::common;

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// Run body(thread) on `threads` threads (the calling one included); wall time in seconds.
template <class F>
double on_threads(int threads, F body) {
  std::vector<std::thread> pool;
  const double t0 = now();
  for (int t = 1; t < threads; ++t) pool.emplace_back(body, t);
  body(0);
  for (auto& th : pool) th.join();
  return now() - t0;
}

double gemm_gflops(int threads, double seconds) {
  const int n = 1536;
  std::vector<float> A(static_cast<size_t>(n) * n), B(A.size()), C(A.size());
  for (size_t i = 0; i < A.size(); ++i) {
    A[i] = static_cast<float>((i * 7919) % 1000) * 1e-3f - 0.5f;
    B[i] = static_cast<float>((i * 104729) % 1000) * 1e-3f - 0.5f;
  }
  // Columns split in multiples of the register tile's width, one block per thread.
  const int step = NV * W;
  const int blocks = (n + step - 1) / step;
  double best = 1e30;
  const double until = now() + seconds;
  for (int round = 0; round < 3 || (now() < until && round < 50); ++round) {
    const double dt = on_threads(threads, [&](int t) {
      const int b0 = blocks * t / threads, b1 = blocks * (t + 1) / threads;
      const int c0 = b0 * step, c1 = std::min(n, b1 * step);
      if (c1 > c0) gemm_cols(n, c0, c1, n, A.data(), n, 1, B.data(), n, C.data(), n, false);
    });
    best = std::min(best, dt);
  }
  return 2.0 * n * n * static_cast<double>(n) / best * 1e-9;
}

// One thread's synapse loop: N destinations x S synapses each, R rounds (sub-steps).
double synapse_work(int N, int S, int rounds, float* sink) {
  using V = vf<>;
  std::vector<V> v(N);
  for (int i = 0; i < N; ++i) v[i] = splat(0.01f * static_cast<float>(i % 17) - 0.08f);
  struct Syn {
    float wm, sl, c, erev;
    int32_t src;
  };
  std::vector<Syn> syn(static_cast<size_t>(N) * S);
  for (size_t e = 0; e < syn.size(); ++e)
    syn[e] = Syn{0.5f + 0.001f * (e % 7), 4.0f * 1.4427f, 0.3f * 4.0f * 1.4427f, (e % 2) ? 1.0f : -1.0f,
                 static_cast<int32_t>((e * 13) % N)};
  std::vector<V> out(N);
  for (int r = 0; r < rounds; ++r) {
    for (int i = 0; i < N; ++i) {
      V num = splat(0.0f), den = splat(0.0f);
      const Syn* y = syn.data() + static_cast<size_t>(i) * S;
      for (int e = 0; e < S; ++e) {
        const V a = y[e].wm * vsigmoid_log2<W>(y[e].c - y[e].sl * v[y[e].src]);
        num += a * y[e].erev;
        den += a;
      }
      out[i] = num + den;
    }
    // Feed back (cheaply) so the compiler cannot hoist the rounds.
    for (int i = 0; i < N; ++i) v[i] = v[i] * 0.5f + out[i] * 1e-6f;
  }
  float s = 0.0f;
  for (int i = 0; i < N; ++i) s += v[i][0];
  *sink = s;
  return static_cast<double>(rounds) * N * S * W;  // lane-synapse evaluations
}

double synapse_evals_per_s(int threads, double seconds) {
  const int N = 64, S = 64, rounds = 200;  // 4096 synapses x 20 B: L1/L2-resident
  std::vector<float> sink(threads * 16);
  double best = 0.0;
  const double until = now() + seconds;
  for (int round = 0; round < 3 || (now() < until && round < 50); ++round) {
    std::atomic<double> evals{0.0};
    const double dt = on_threads(threads, [&](int t) {
      const double e = synapse_work(N, S, rounds, &sink[t * 16]);
      double cur = evals.load();
      while (!evals.compare_exchange_weak(cur, cur + e)) {
      }
    });
    best = std::max(best, evals.load() / dt);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::max(1, std::atoi(argv[1])) : 1;
  const double seconds = argc > 2 ? std::atof(argv[2]) : 1.0;
  const double gemm = gemm_gflops(threads, seconds);
  const double syn = synapse_evals_per_s(threads, seconds);
  std::printf(
      "{\"threads\": %d, \"simd_lanes\": %d, \"gemm_n\": 1536, \"gemm_gflops\": %.3f, "
      "\"synapse_evals_per_s\": %.6g}\n",
      threads, W, gemm, syn);
  return 0;
}
