// Micro-benchmark behind the GEMM choice of the fused CfC kernels (see csrc/common/gemm.h):
// our register-blocked kernels vs scipy-openblas32's scipy_cblas_sgemm (1 thread), on the
// shapes of the CfC time loop. Build and run:
//   g++ -O3 -march=native -std=gnu++20 -Icsrc benchmarks/gemm_bench.cpp -ldl -o /tmp/gemm_bench
//   /tmp/gemm_bench $(python -c "import scipy_openblas32 as s; print(s.get_lib_dir())")/libscipy_openblas.so
#include <dlfcn.h>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>
#include "common/gemm.h"

using sgemm_t = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int, float, float*, int);
using namespace ncps::common;

static double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

template <class F>
double best_us(F f, int reps) {
  double best = 1e30;
  for (int r = 0; r < 5; ++r) {
    double t0 = now();
    for (int i = 0; i < reps; ++i) f();
    best = std::min(best, (now() - t0) / reps);
  }
  return best * 1e6;
}

int main(int argc, char** argv) {
  sgemm_t sgemm = nullptr;
  if (argc > 1) {
    void* h = dlopen(argv[1], RTLD_NOW);
    if (h) {
      sgemm = (sgemm_t)dlsym(h, "scipy_cblas_sgemm");
      auto setn = (void (*)(int))dlsym(h, "scipy_openblas_set_num_threads");
      if (setn) setn(1);
    }
  }
  struct S {
    const char* what;
    int M, N, K;
    bool tn;
    bool nt;
  };
  S shapes[] = {
      {"step fwd h@W0h^T (B=32)", 32, 128, 64, false, false},
      {"step fwd z@Wheads^T (B=32)", 32, 256, 128, false, false},
      {"step fwd z@Wheads^T (B=16 tile)", 16, 256, 128, false, false},
      {"step bwd dheads@Wheads (B=16 tile)", 16, 128, 256, false, false},
      {"step bwd dA@W0h (B=16 tile)", 16, 64, 128, false, false},
      {"wired layer [in,h]@W^T (B=16, 49->132)", 16, 132, 49, false, false},
      {"hoisted X@W0x^T (BT=3200)", 3200, 128, 16, false, false},
      {"post dWheads = dH^T Z (BT=3200)", 256, 128, 3200, true, false},
      {"post dW0 = dA^T [x,h] (BT=3200)", 128, 80, 3200, true, false},
      {"post dWlh = dG^T H (mixed, BT=3200)", 256, 64, 3200, true, false},
      {"post dWlx = dG^T X (mixed, BT=3200)", 256, 16, 3200, true, false},
      {"step bwd dG@Wlh (mixed, B=16 tile)", 16, 64, 256, false, false},
      {"stream B=1 z@Wheads^T (NN, packed)", 1, 256, 128, false, false},
      {"stream B=1 z@Wheads^T (NT, unpacked)", 1, 256, 128, false, true},
  };
  std::mt19937 rng(0);
  std::uniform_real_distribution<float> U(-1, 1);
  printf("%-42s %10s %10s %8s %8s %s\n", "shape", "ours us", "oblas us", "ours GF", "oblas GF", "maxerr");
  for (auto& s : shapes) {
    std::vector<float> A((size_t)s.M * s.K), B((size_t)s.K * s.N), C((size_t)s.M * s.N), R((size_t)s.M * s.N);
    for (auto& v : A) v = U(rng);
    for (auto& v : B) v = U(rng);
    // reference (double)
    for (int i = 0; i < s.M; ++i)
      for (int j = 0; j < s.N; ++j) {
        double acc = 0;
        for (int k = 0; k < s.K; ++k) {
          float a = s.tn ? A[(size_t)k * s.M + i] : A[(size_t)i * s.K + k];
          float b = s.nt ? B[(size_t)j * s.K + k] : B[(size_t)k * s.N + j];
          acc += (double)a * b;
        }
        R[(size_t)i * s.N + j] = (float)acc;
      }
    auto ours = [&] {
      if (s.tn)
        gemm_tn(s.M, s.N, s.K, A.data(), s.M, B.data(), s.N, C.data(), s.N, false);
      else if (s.nt)
        gemm_nt(s.M, s.N, s.K, A.data(), s.K, B.data(), s.K, C.data(), s.N, false);
      else
        gemm_nn(s.M, s.N, s.K, A.data(), s.K, B.data(), s.N, C.data(), s.N, false);
    };
    ours();
    double err = 0;
    for (size_t i = 0; i < C.size(); ++i) err = std::max(err, (double)std::fabs(C[i] - R[i]));
    double flops = 2.0 * s.M * s.N * s.K;
    int reps = std::max(1, (int)(2e8 / flops));
    double t_ours = best_us(ours, reps);
    double t_ob = NAN;
    if (sgemm) {
      auto ob = [&] {
        // RowMajor=101, NoTrans=111, Trans=112
        sgemm(101, s.tn ? 112 : 111, s.nt ? 112 : 111, s.M, s.N, s.K, 1.0f, A.data(), s.tn ? s.M : s.K, B.data(),
              s.nt ? s.K : s.N, 0.0f, C.data(), s.N);
      };
      t_ob = best_us(ob, reps);
    }
    printf("%-42s %10.2f %10.2f %8.1f %8.1f %.1e\n", s.what, t_ours, t_ob, flops / t_ours * 1e-3, flops / t_ob * 1e-3,
           err);
  }
}
