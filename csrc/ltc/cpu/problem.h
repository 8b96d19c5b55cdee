// The kernels' problems built from a primitive's inputs inside the dispatched task: strided inputs
// gathered (common::View), synapse lists built, pointers set.
#pragma once

#include <array>
#include <memory>
#include <vector>

#include "common/view.h"
#include "ltc/cpu/kernel.h"
#include "ltc/cpu/mixed_kernel.h"
#include "ltc/primitives.h"

namespace ncps::ltc::cpu {

// What a task owns while it runs: gathered copies of strided inputs and the synapse lists.
struct ProblemData {
  std::array<std::vector<float>, kNumInputs> bufs;
  SynapseList sens, rec;
  Problem p;

  ProblemData(const std::vector<common::View>& v, const Dims& d, int K, float eps) {
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
  ProblemData(const ProblemData&) = delete;
  ProblemData& operator=(const ProblemData&) = delete;
};

// The LTC ProblemData plus the LSTM's MixedProblem.
struct MixedProblemData {
  std::unique_ptr<ProblemData> ltc;
  std::array<std::vector<float>, kNumLSTMInputs> bufs;
  MixedProblem m;

  MixedProblemData(const std::vector<common::View>& v, const MixedDims& md, int K, float eps) {
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
  MixedProblemData(const MixedProblemData&) = delete;
  MixedProblemData& operator=(const MixedProblemData&) = delete;
};

}  // namespace ncps::ltc::cpu
