// A front-end stand-in for the Metal Shading Language, enough for clang++ -fsyntax-only to check
// the kernels MLX generates (undeclared names, types, device pointers passed where thread pointers
// are expected). It is not Apple's compiler: Metal-only rules beyond this shim go unchecked.
#pragma once
#define kernel
#define device __attribute__((address_space(1)))
#define constant __attribute__((address_space(2)))
// Clang rejects address spaces on automatic variables; function-scope threadgroup arrays become
// statics (shared by the group, as in Metal).
#define threadgroup static
#define thread
#define METAL_FUNC inline
#include <cstdint>
// Metal's 16-bit types are builtins that convert by static_cast; clang's storage-only __fp16 stands
// in for both (half, and bfloat16_t, which MLX maps to Metal's bfloat): the check covers that the
// bodies convert explicitly and name the types MLX generates, not 16-bit arithmetic.
typedef __fp16 half;
typedef half float16_t;  // MLX's name for half in the signatures it generates
typedef __fp16 bfloat16_t;
struct uint3 {
  unsigned x, y, z;
};
namespace metal {
enum class mem_flags { mem_none = 0, mem_device = 1, mem_threadgroup = 2 };
void threadgroup_barrier(mem_flags);
float exp(float);
float tanh(float);
float fabs(float);
float abs(float);
float max(float, float);
float min(float, float);
namespace precise {
float exp(float);
float tanh(float);
}  // namespace precise
}  // namespace metal
using namespace metal;
