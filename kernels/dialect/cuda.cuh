// CUDA prelude of the ncps kernel dialect (see kernels/README.md). Passed as the `header` of
// mx.fast.cuda_kernel; template constants (N, NT, ...) arrive as constexpr ints from MLX.
//
// Threadgroup arrays are carved, in declaration order, out of one block of *dynamic* shared memory
// (`extern __shared__`, sized by the launch's shared_memory= argument), so a kernel may use more
// than the 48 KiB static limit (up to 227 KiB per block on sm_90). The launch layer computes the
// byte count from the same declarations (ncps.backends.gpu.ltc/cfc `_tg_bytes*`); the CPU emulation checks
// the two agree on every emulated launch. Every array holds 4-byte elements (int, float), so each
// stays 4-byte aligned.
//
// Per-sample inputs and outputs are stored as IOT (`using IOT = float / __half / __nv_bfloat16;`,
// from the launch's dtype template argument); IO_LOAD converts to float, IO_STORE rounds a float to
// IOT (round to nearest even). The conversion intrinsics are used rather than the types'
// conversion operators, which cuda_fp16.h / cuda_bf16.h hide under __CUDA_NO_HALF_CONVERSIONS__.
// MLX's device prelude (utils.cuh) includes both headers already; the includes here make the
// prelude self-contained (nvcc checks without MLX's headers).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
__device__ __forceinline__ float ncps_io_load(float v) { return v; }
__device__ __forceinline__ float ncps_io_load(__half v) { return __half2float(v); }
__device__ __forceinline__ float ncps_io_load(__nv_bfloat16 v) { return __bfloat162float(v); }
template <class T>
__device__ __forceinline__ T ncps_io_store(float v);
template <>
__device__ __forceinline__ float ncps_io_store<float>(float v) { return v; }
template <>
__device__ __forceinline__ __half ncps_io_store<__half>(float v) { return __float2half_rn(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 ncps_io_store<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
#define IO_LOAD(v) ncps_io_load(v)
#define IO_STORE(v) ncps_io_store<IOT>(v)
#define KERNEL_CONST const
#define LID_X (static_cast<int>(threadIdx.x))
#define GID_X (static_cast<int>(blockIdx.x))
#define TG_SETUP            \
  extern __shared__ float ncps_smem[]; \
  int ncps_tg_off = 0
#define TG_ARRAY(T, name, n)                                  \
  T* name = reinterpret_cast<T*>(ncps_smem + ncps_tg_off); \
  ncps_tg_off += static_cast<int>(n)
#define BARRIER(tag) __syncthreads()
#define EXP(x) expf(x)
#define TANH(x) tanhf(x)
#define FABS(x) fabsf(x)
#define SIGMOID(x) ncps_sigmoid(x)
__device__ __forceinline__ float ncps_sigmoid(float z) { return 1.0f / (1.0f + expf(-z)); }
