// The kernels' problems built from a primitive's inputs inside the dispatched task (problem.h):
// strided inputs gathered (common::View), synapse lists built, pointers set.
#include "ltc/problem.h"

namespace ncps::ltc {

SynapseList build_synapses(const float* w, const float* sigma, const float* mu, const float* erev, const float* mask,
                           int S, int N) {
  SynapseList l;
  l.rowptr.assign(static_cast<size_t>(N) + 1, 0);
  for (int k = 0; k < S; ++k)
    for (int i = 0; i < N; ++i)
      if (mask[static_cast<int64_t>(k) * N + i] != 0.0f) l.rowptr[i + 1]++;
  for (int i = 0; i < N; ++i) l.rowptr[i + 1] += l.rowptr[i];
  const size_t n = static_cast<size_t>(l.rowptr[N]);
  l.syn.resize(n);
  l.pos.resize(n);
  std::vector<int32_t> cursor(l.rowptr.begin(), l.rowptr.end() - 1);
  for (int k = 0; k < S; ++k) {
    for (int i = 0; i < N; ++i) {
      const int64_t p = static_cast<int64_t>(k) * N + i;
      const float m = mask[p];
      if (m == 0.0f) continue;
      const int32_t e = cursor[i]++;
      l.syn[e] = Synapse{w[p] * m, sigma[p] * kLog2e, sigma[p] * mu[p] * kLog2e, erev[p], sigma[p], mu[p], k, m};
      l.pos[e] = p;
    }
  }
  return l;
}

ProblemData::ProblemData(const std::vector<common::View>& v, const Dims& d, int K, float eps) {
  const float* q[kNumInputs];
  for (int k = 0; k < kNumInputs; ++k) q[k] = v[k].resolve(bufs[k]);
  sens = build_synapses(q[kSensoryW], q[kSensorySigma], q[kSensoryMu], q[kSensoryErev], q[kSensoryMask], d.I, d.N);
  rec = build_synapses(q[kW], q[kSigma], q[kMu], q[kErev], q[kMask], d.N, d.N);
  p.B = d.B;
  p.T = d.T;
  p.I = d.I;
  p.N = d.N;
  p.K = K;
  p.eps = eps;
  p.x = q[kX];
  p.h0 = q[kH0];
  p.dt = q[kDt];
  p.cm = q[kCm];
  p.gl = q[kGleak];
  p.vl = q[kVleak];
  p.sens = &sens;
  p.rec = &rec;
}

MixedProblemData::MixedProblemData(const std::vector<common::View>& v, const MixedDims& md, int K, float eps) {
  ltc = std::make_unique<ProblemData>(v, md.d, K, eps);
  const float* q[kNumLSTMInputs];
  for (int k = 0; k < kNumLSTMInputs; ++k) q[k] = v[kNumInputs + k].resolve(bufs[k]);
  m.ltc = &ltc->p;
  m.F = md.F;
  m.u = q[kLstmInput - kNumInputs];
  m.bias = q[kLstmInputB - kNumInputs];
  m.c0 = q[kC0 - kNumInputs];
  m.set_weights(q[kLstmInputW - kNumInputs], q[kLstmRecurrentW - kNumInputs]);
}

}  // namespace ncps::ltc
