// Metal prelude of the ncps kernel dialect (see kernels/README.md). Passed as the `header` of
// mx.fast.metal_kernel. The thread-id macros live in metal_ids.h, which must be prepended to the
// kernel *source*: MLX declares the [[thread_position_in_threadgroup]]-style arguments only for
// names it finds in the source, not in the header.
#define KERNEL_CONST const
// Per-sample inputs and outputs are stored as IOT (the kernel's `typename IOT` template parameter:
// float, half (MLX: float16_t) or bfloat16_t); loads convert to float, stores round a float to IOT.
#define IO_LOAD(v) static_cast<float>(v)
#define IO_STORE(v) static_cast<IOT>(v)
// Threadgroup arrays are static on Metal (32 KiB guaranteed); TG_SETUP is needed only by CUDA's
// dynamic shared memory.
#define TG_SETUP static_cast<void>(0)
#define TG_ARRAY(T, name, n) threadgroup T name[n]
#define BARRIER(tag) threadgroup_barrier(metal::mem_flags::mem_threadgroup)
#define EXP(x) metal::precise::exp(x)
#define TANH(x) metal::precise::tanh(x)
#define FABS(x) metal::fabs(x)
#define SIGMOID(x) ncps_sigmoid(x)
inline float ncps_sigmoid(float z) { return 1.0f / (1.0f + metal::precise::exp(-z)); }
