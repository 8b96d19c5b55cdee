// Vectorised float32 math for the fused CfC kernels (GCC/Clang vector extensions, the vector
// type of gemm.h): exp, tanh, sigmoid, erf and the backbone activations with their derivatives.
//
// Accuracy (max abs error vs double precision, checked by tests/test_fused_cfc.py through the
// end-to-end comparisons): exp ~2 ulp relative on [-87, 88]; tanh ~3e-7; sigmoid
// ~1e-7; erf 1.5e-7 absolute (Abramowitz & Stegun 7.1.26), far inside the 1e-5 the fused path
// promises against the reference.
#pragma once

#include <cmath>

#include "gemm.h"

namespace ncps::cfcm {

using cfcg::vf;
using cfcg::vi;
using cfcg::W;
using cfcg::splat;

CFC_INLINE vf vmin(vf a, vf b) { return a < b ? a : b; }
CFC_INLINE vf vmax(vf a, vf b) { return a > b ? a : b; }
// x limited to [lo, hi]; NaN stays NaN (so a NaN input still yields a NaN result).
CFC_INLINE vf vclamp(vf x, float lo, float hi) {
  x = x < lo ? splat(lo) : x;
  return x > hi ? splat(hi) : x;
}
CFC_INLINE vf vabs(vf a) { return a < 0.0f ? -a : a; }
// sign(a) in {-1, 0, 1} (the derivative MLX uses for |a|).
CFC_INLINE vf vsign(vf a) { return (a > 0.0f ? splat(1.0f) : splat(0.0f)) - (a < 0.0f ? splat(1.0f) : splat(0.0f)); }

// exp(x): x clamped to [-87.3, 88.7]; Cody-Waite reduction, degree-6 polynomial (Cephes expf).
CFC_INLINE vf vexp(vf x) {
  x = vclamp(x, -87.3f, 88.7f);
  const vf magic = splat(12582912.0f);  // 1.5 * 2^23: round to nearest
  vf t = x * 1.44269504088896341f + magic;
  vf n = t - magic;
  vf r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  vf p = splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  vf y = p * (r * r) + r + 1.0f;
  vi ni = __builtin_convertvector(n, vi);
  // n in [-126, 128]: build 2^n as 2^(n/2) * 2^(n - n/2) so n = 128 does not overflow the bits.
  vi n1 = ni >> 1;
  vi n2 = ni - n1;
  vf s1 = (vf)((n1 + 127) << 23);
  vf s2 = (vf)((n2 + 127) << 23);
  return y * s1 * s2;
}

CFC_INLINE vf vsigmoid(vf x) { return 1.0f / (1.0f + vexp(-x)); }

// tanh(x): the [13/6] rational minimax approximation on [-7.905, 7.905] (Eigen's float tanh;
// |error| <= 3e-7 absolute and relative), one division and no exp.
CFC_INLINE vf vtanh(vf x) {
  x = vclamp(x, -7.90531110763549805f, 7.90531110763549805f);
  const vf x2 = x * x;
  vf p = splat(-2.76076847742355e-16f);
  p = p * x2 + 2.00018790482477e-13f;
  p = p * x2 - 8.60467152213735e-11f;
  p = p * x2 + 5.12229709037114e-08f;
  p = p * x2 + 1.48572235717979e-05f;
  p = p * x2 + 6.37261928875436e-04f;
  p = p * x2 + 4.89352455891786e-03f;
  vf q = splat(1.19825839466702e-06f);
  q = q * x2 + 1.18534705686654e-04f;
  q = q * x2 + 2.26843463243900e-03f;
  q = q * x2 + 4.89352518554385e-03f;
  return (p * x) / q;
}

// erf(x), |error| <= 1.5e-7 (Abramowitz & Stegun 7.1.26).
CFC_INLINE vf verf(vf x) {
  const vf ax = vabs(x);
  const vf t = 1.0f / (1.0f + 0.3275911f * ax);
  vf p = splat(1.061405429f);
  p = p * t - 1.453152027f;
  p = p * t + 1.421413741f;
  p = p * t - 0.284496736f;
  p = p * t + 0.254829592f;
  const vf y = 1.0f - p * t * vexp(-ax * ax);
  return x < 0.0f ? -y : y;
}

// Backbone activations, in the order of ncps.activations (codes shared with the Python side).
enum Act : int { LECUN_TANH = 0, TANH = 1, RELU = 2, SILU = 3, GELU = 4, SIGMOID = 5, SOFTPLUS = 6 };
constexpr int kNumActs = 7;

constexpr float kLecunA = 1.7159f, kLecunB = 0.666f;
constexpr float kInvSqrt2 = 0.70710678118654752f, kInvSqrt2Pi = 0.39894228040143268f;

// softplus(x) = max(x, 0) + log1p(exp(-|x|)) (as mx.logaddexp(x, 0)); scalar log1p per lane.
CFC_INLINE vf vsoftplus(vf x) {
  vf e = vexp(-vabs(x));
  vf l;
  for (int i = 0; i < W; ++i) l[i] = std::log1p(e[i]);
  return vmax(x, splat(0.0f)) + l;
}

CFC_INLINE vf act_fwd(int act, vf a) {
  switch (act) {
    case LECUN_TANH: return kLecunA * vtanh(kLecunB * a);
    case TANH: return vtanh(a);
    case RELU: return vmax(a, splat(0.0f));
    case SILU: return a * vsigmoid(a);
    case GELU: return 0.5f * a * (1.0f + verf(a * kInvSqrt2));
    case SIGMOID: return vsigmoid(a);
    default: return vsoftplus(a);
  }
}

// d act / d a at pre-activation a, given z = act(a).
CFC_INLINE vf act_grad(int act, vf a, vf z) {
  switch (act) {
    case LECUN_TANH: {
      const vf t = z * (1.0f / kLecunA);
      return (kLecunA * kLecunB) * (1.0f - t * t);
    }
    case TANH: return 1.0f - z * z;
    case RELU: return a > 0.0f ? splat(1.0f) : splat(0.0f);
    case SILU: {
      const vf s = vsigmoid(a);
      return s * (1.0f + a * (1.0f - s));
    }
    case GELU: return 0.5f * (1.0f + verf(a * kInvSqrt2)) + a * kInvSqrt2Pi * vexp(-0.5f * a * a);
    case SIGMOID: return z * (1.0f - z);
    default: return vsigmoid(a);
  }
}

}  // namespace ncps::cfcm
