// CUDA prelude of the ncps kernel dialect (see kernels/README.md). Passed as the `header` of
// mx.fast.cuda_kernel; template constants (N, NT, ...) arrive as constexpr ints from MLX.
#define KERNEL_CONST const
#define LID_X (static_cast<int>(threadIdx.x))
#define GID_X (static_cast<int>(blockIdx.x))
#define TG_ARRAY(T, name, n) __shared__ T name[n]
#define BARRIER(tag) __syncthreads()
#define EXP(x) expf(x)
#define TANH(x) tanhf(x)
#define FABS(x) fabsf(x)
#define SIGMOID(x) ncps_sigmoid(x)
__device__ __forceinline__ float ncps_sigmoid(float z) { return 1.0f / (1.0f + expf(-z)); }
