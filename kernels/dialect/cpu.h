// CPU-emulation prelude of the ncps kernel dialect (see kernels/README.md).
//
// A kernel body runs once per emulated thread: every threadgroup's NT threads are real std::threads
// that share one std::barrier, so BARRIER() really orders memory between them and ThreadSanitizer
// sees exactly the races a GPU would have. Threadgroup arrays come from a per-group arena: the k-th
// TG_ARRAY of every thread of a group resolves to the same block. Arena blocks are filled with 0xFF
// bytes (NaN for floats) so that a read of never-written threadgroup memory shows in the results,
// as uninitialised GPU threadgroup memory would.
//
// Per-sample inputs and outputs are stored as IOT (float, or the 16-bit ncps_emu::half_t /
// ncps_emu::bfloat16_t below, defined by the emulation program per build); the bodies convert on
// every load (IO_LOAD: to float) and store (IO_STORE: float rounded to IOT). The 16-bit types hold
// bits only and convert explicitly, so a body that forgets a conversion does not compile here.
//
// Build with -DNCPS_DROP_BARRIER=<tag> to remove the barrier BARRIER(<tag>) (TSan self-test).
#pragma once
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace ncps_emu {

struct Group {
  explicit Group(int threads) : bar(threads) {}
  std::barrier<> bar;
  std::mutex mu;
  std::vector<std::unique_ptr<char[]>> blocks;
  long bytes = 0;  // threadgroup memory the body declared (the CUDA launch's dynamic shared memory)
};

// Threadgroup bytes of the first group (every group declares the same arrays); written to
// tg_bytes.txt by the emulation program so the launch layer's byte count is checked.
inline long tg_bytes_declared = -1;

struct Ctx {
  int lid, gid;
  Group* group;
  int next_block = 0;

  template <class T>
  T* tg_alloc(long n) {
    std::lock_guard<std::mutex> lock(group->mu);
    const int k = next_block++;
    if (k == static_cast<int>(group->blocks.size())) {
      const size_t bytes = sizeof(T) * static_cast<size_t>(n > 0 ? n : 1);
      group->bytes += static_cast<long>(sizeof(T)) * n;
      group->blocks.emplace_back(new char[bytes]);
      std::memset(group->blocks.back().get(), 0xFF, bytes);
    }
    return reinterpret_cast<T*>(group->blocks[k].get());
  }

  void barrier(int tag) {
#ifdef NCPS_DROP_BARRIER
    if (tag == NCPS_DROP_BARRIER) return;
#endif
    (void)tag;
    group->bar.arrive_and_wait();
  }
};

// Runs `body(ctx)` for every thread of every group; groups run one after another.
template <class F>
void launch(int groups, int threads, F&& body) {
  for (int gid = 0; gid < groups; ++gid) {
    Group group(threads);
    std::vector<std::thread> pool;
    pool.reserve(threads);
    for (int lid = 0; lid < threads; ++lid)
      pool.emplace_back([&, lid] {
        Ctx ctx{lid, gid, &group};
        body(ctx);
      });
    for (auto& t : pool) t.join();
    if (gid == 0) tg_bytes_declared = group.bytes;
  }
}

inline float sigmoid(float z) { return 1.0f / (1.0f + std::exp(-z)); }

inline uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

// IEEE binary16 (CUDA __half, Metal half): float -> half rounds to nearest, ties to even (as
// __float2half_rn and Metal's conversion); overflow gives +-inf, NaN stays NaN.
struct half_t {
  uint16_t bits = 0;
  half_t() = default;
  explicit half_t(float f) {
    const uint32_t u = float_bits(f);
    const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
    const uint32_t a = u & 0x7FFFFFFFu;
    if (a > 0x7F800000u) {
      bits = sign | 0x7E00u;  // NaN
    } else if (a >= 0x477FF000u) {
      bits = sign | 0x7C00u;  // >= 65520 (halfway above 65504) rounds to inf
    } else if (a >= 0x38800000u) {  // a normal half: >= 2^-14; a carry out of the mantissa bumps the exponent
      const uint32_t r = a + 0x0FFFu + ((a >> 13) & 1u);
      bits = sign | static_cast<uint16_t>((r >> 13) - (112u << 10));
    } else {  // subnormal or zero: in units of 2^-24 (exact scaling), nearbyint rounds half to even
      float mag;
      std::memcpy(&mag, &a, sizeof mag);
      bits = sign | static_cast<uint16_t>(std::nearbyint(mag * 16777216.0f));  // 1024 is 2^-14, a normal
    }
  }
  explicit operator float() const {
    const int e = (bits >> 10) & 0x1F, m = bits & 0x3FF;
    float v = e == 0 ? std::ldexp(static_cast<float>(m), -24)
              : e == 31 ? (m ? NAN : INFINITY)
                        : std::ldexp(static_cast<float>(m | 0x400), e - 25);
    return (bits & 0x8000u) ? -v : v;
  }
};

// bfloat16 (CUDA __nv_bfloat16, Metal bfloat16_t): the high 16 bits of a float, rounded to
// nearest, ties to even (as __float2bfloat16_rn and MLX's float_to_bfloat_bits); NaN stays NaN.
struct bfloat16_t {
  uint16_t bits = 0;
  bfloat16_t() = default;
  explicit bfloat16_t(float f) {
    const uint32_t u = float_bits(f);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u)
      bits = static_cast<uint16_t>((u >> 16) | 0x40u);  // quiet NaN
    else
      bits = static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
  }
  explicit operator float() const {
    const uint32_t u = static_cast<uint32_t>(bits) << 16;
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
  }
};

}  // namespace ncps_emu

#define KERNEL_CONST const
#define LID_X (ncps_ctx.lid)
#define GID_X (ncps_ctx.gid)
#define TG_SETUP static_cast<void>(0)
#define TG_ARRAY(T, name, n) T* name = ncps_ctx.tg_alloc<T>(n)
#define BARRIER(tag) ncps_ctx.barrier(tag)
#define EXP(x) std::exp(x)
#define TANH(x) std::tanh(x)
#define FABS(x) std::fabs(x)
#define SIGMOID(x) ncps_emu::sigmoid(x)
#define IO_LOAD(v) static_cast<float>(v)
#define IO_STORE(v) static_cast<IOT>(v)
