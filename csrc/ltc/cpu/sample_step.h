// One LTC step of a single sample (the streaming step at batch 1), vectorised over synapses.
//
// The sequence kernels (sequence.h) put one sample in each SIMD lane, so a batch of one uses one
// lane in W. Here the lanes hold W synapses instead: within a sub-step every synapse reads the
// same start state, so all activations a = w*mask*sigmoid(sigma (v[src] - mu)) (and a*erev) are
// computed in one vectorised pass over the flat synapse arrays, then summed per destination in
// the synapse list's order, the order of the sequence kernels. Same math as StepCtx::prepare and
// substep in sequence.h (dt = 0 keeps the state, an invalid dt makes it NaN).
#pragma once

#if !defined(NCPS_ISA)
#error "kernel code: include it from a kernel translation unit (forward.cpp), compiled per target"
#endif

#include <cmath>
#include <cstdint>
#include <cstring>

#include "common/simd.h"
#include "ltc/problem.h"

namespace ncps::ltc::cpu {
NCPS_ISA_BEGIN

// a[e] and ae[e] = a[e] * erev[e] for every synapse e of s (padding included: weight 0), from the
// presynaptic values v.
NCPS_INLINE void synapse_activations(const FlatSynapses& s, const float* v, float* a, float* ae) {
  constexpr int L = common::W;
  using V = common::vf<L>;
  const float* wm = s.wm.data();
  const float* sl = s.sl.data();
  const float* c = s.c.data();
  const float* er = s.erev.data();
  const int32_t* src = s.src.data();
  for (int64_t e = 0; e < s.padded; e += L) {
    V x, w, k, m, r;
    for (int l = 0; l < L; ++l) x[l] = v[src[e + l]];
    std::memcpy(&w, wm + e, sizeof(V));
    std::memcpy(&k, c + e, sizeof(V));
    std::memcpy(&m, sl + e, sizeof(V));
    std::memcpy(&r, er + e, sizeof(V));
    const V av = w * common::vsigmoid_log2<L>(k - m * x);
    const V aev = av * r;
    std::memcpy(a + e, &av, sizeof(V));
    std::memcpy(ae + e, &aev, sizeof(V));
  }
}

// Σ over destination i's synapses of ae (num) and a (den), in list order.
NCPS_INLINE void row_sums(const FlatSynapses& s, int i, const float* a, const float* ae, float& num, float& den) {
  num = 0.0f;
  den = 0.0f;
  for (int32_t e = s.rowptr[i]; e < s.rowptr[i + 1]; ++e) {
    num += ae[e];
    den += a[e];
  }
}

inline void sample_forward(const SampleProblem& sp, float* state, float* ws) {
  const Problem& p = *sp.ltc;
  const int N = p.N;
  float d = p.dt[0];
  if (!(d >= 0.0f) || !(d <= 3.4e38f)) d = NAN;  // negative, NaN or inf: the state becomes NaN
  std::memcpy(state, p.h0, sizeof(float) * N);
  if (d == 0.0f) return;  // dt = 0 keeps the state
  const float h = d / static_cast<float>(p.K);
  const int64_t E = sp.sens->padded > sp.rec->padded ? sp.sens->padded : sp.rec->padded;
  float* a = ws;
  float* ae = a + E;
  float* cmt = ae + E;
  float* bnum = cmt + N;
  float* bden = bnum + N;
  float* other = bden + N;
  synapse_activations(*sp.sens, p.x, a, ae);
  for (int i = 0; i < N; ++i) {
    float num, den;
    row_sums(*sp.sens, i, a, ae, num, den);
    const float c = p.cm[i] / h;
    cmt[i] = c;
    bnum[i] = p.gl[i] * p.vl[i] + num;
    bden[i] = c + p.gl[i] + den + p.eps;
  }
  float* vin = state;
  float* vout = other;
  for (int k = 0; k < p.K; ++k) {
    synapse_activations(*sp.rec, vin, a, ae);
    for (int i = 0; i < N; ++i) {
      float num, den;
      row_sums(*sp.rec, i, a, ae, num, den);
      vout[i] = (cmt[i] * vin[i] + bnum[i] + num) / (bden[i] + den);
    }
    float* t = vin;
    vin = vout;
    vout = t;
  }
  if (vin != state) std::memcpy(state, vin, sizeof(float) * N);
}

NCPS_ISA_END
}  // namespace ncps::ltc::cpu
