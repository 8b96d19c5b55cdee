// The CfC backbone activations and their derivatives on one native vector (common/simd.h), and
// erf for GELU.
//
// Accuracy (max abs error vs double precision, checked by tests/test_fused_cfc.py through the
// end-to-end comparisons and by tests/test_simd_math.py): exp ~2 ulp relative on [-87, 88];
// tanh ~3e-7; sigmoid ~1e-7; erf 1.5e-7 absolute (Abramowitz & Stegun 7.1.26), far inside the
// 1e-5 the fused path promises against the reference.
#pragma once

#include <cmath>

#include "cfc/problem.h"
#include "common/simd.h"

namespace ncps::cfc::cpu {
NCPS_ISA_BEGIN

// The CfC kernels work on one native vector.
using vf = common::vf<>;
using namespace ncps::common;

// erf(x), |error| <= 1.5e-7 (Abramowitz & Stegun 7.1.26).
NCPS_INLINE vf verf(vf x) {
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

constexpr float kLecunA = 1.7159f, kLecunB = 0.666f;
constexpr float kInvSqrt2 = 0.70710678118654752f, kInvSqrt2Pi = 0.39894228040143268f;

// softplus(x) = max(x, 0) + log1p(exp(-|x|)) (as mx.logaddexp(x, 0)); scalar log1p per lane.
NCPS_INLINE vf vsoftplus(vf x) {
  vf e = vexp(-vabs(x));
  vf l;
  for (int i = 0; i < W; ++i) l[i] = std::log1p(e[i]);
  return vmax(x, splat(0.0f)) + l;
}

NCPS_INLINE vf act_fwd(int act, vf a) {
  switch (act) {
    case LECUN_TANH:
      return kLecunA * vtanh<W, true>(kLecunB * a);  // no division (see vtanh)
    case TANH:
      return vtanh<W, true>(a);
    case RELU:
      return vmax(a, splat(0.0f));
    case SILU:
      return a * vsigmoid(a);
    case GELU:
      return 0.5f * a * (1.0f + verf(a * kInvSqrt2));
    case SIGMOID:
      return vsigmoid(a);
    default:
      return vsoftplus(a);
  }
}

// d act / d a at pre-activation a, given z = act(a).
NCPS_INLINE vf act_grad(int act, vf a, vf z) {
  switch (act) {
    case LECUN_TANH: {
      const vf t = z * (1.0f / kLecunA);
      return (kLecunA * kLecunB) * (1.0f - t * t);
    }
    case TANH:
      return 1.0f - z * z;
    case RELU:
      return a > 0.0f ? splat(1.0f) : splat(0.0f);
    case SILU: {
      const vf s = vsigmoid(a);
      return s * (1.0f + a * (1.0f - s));
    }
    case GELU:
      return 0.5f * (1.0f + verf(a * kInvSqrt2)) + a * kInvSqrt2Pi * vexp(-0.5f * a * a);
    case SIGMOID:
      return z * (1.0f - z);
    default:
      return vsigmoid(a);
  }
}

NCPS_ISA_END
}  // namespace ncps::cfc::cpu
