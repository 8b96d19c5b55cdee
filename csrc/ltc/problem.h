// The LTC problem as plain data (no MLX types): the primitives' input order, the sizes, and the
// problem as the kernels see it (synapse lists, pointers, gradient outputs), shared by the
// baseline files (primitives.cpp builds a ProblemData from a primitive's inputs, problem.cpp)
// and the kernels (cpu/: compiled once per instruction-set target, common/isa.h, entry points in
// cpu/kernel.h). Types and declarations only: no code here runs on a wider target.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "common/view.h"

namespace ncps::ltc {

// The primitives' inputs, (enumerator, name) in input order: LTCSequence's 16, then the LSTM's 5
// that LTCMixedSequence adds. The ops' arguments have these names in this order. The enum and
// kInputNames are derived from this table; ncps._ext.ltc_inputs() exports the names and
// tests/kernels/ltc/test_primitive.py checks them against the Python side's order
// (ncps.backends.ltc_args).
// clang-format off
#define NCPS_LTC_INPUTS(X)                                                        \
  X(kX, "x")                                                                      \
  X(kH0, "h0")                                                                    \
  X(kDt, "dt")                                                                    \
  X(kSensoryW, "sensory_w")                                                       \
  X(kSensorySigma, "sensory_sigma")                                               \
  X(kSensoryMu, "sensory_mu")                                                     \
  X(kSensoryErev, "sensory_erev")                                                 \
  X(kSensoryMask, "sensory_mask")                                                 \
  X(kW, "w")                                                                      \
  X(kSigma, "sigma")                                                              \
  X(kMu, "mu")                                                                    \
  X(kErev, "erev")                                                                \
  X(kMask, "mask")                                                                \
  X(kCm, "cm")                                                                    \
  X(kGleak, "gleak")                                                              \
  X(kVleak, "vleak")                                                              \
  X(kLstmInput, "lstm_input")            /* (B, T, F) LSTM input of every step */ \
  X(kLstmInputW, "lstm_input_w")         /* (4N, F)   input_map.weight */         \
  X(kLstmInputB, "lstm_input_b")         /* (4N,)     input_map.bias */           \
  X(kLstmRecurrentW, "lstm_recurrent_w") /* (4N, N)   recurrent_map.weight */     \
  X(kC0, "c0")                           /* (B, N)    initial cell state */
// clang-format on
#define NCPS_LTC_ENUMERATOR(e, name) e,
#define NCPS_LTC_NAME(e, name) name,
enum Input : int { NCPS_LTC_INPUTS(NCPS_LTC_ENUMERATOR) kNumMixedInputs };
inline constexpr const char* kInputNames[kNumMixedInputs] = {NCPS_LTC_INPUTS(NCPS_LTC_NAME)};
#undef NCPS_LTC_ENUMERATOR
#undef NCPS_LTC_NAME
constexpr int kNumInputs = kLstmInput;  // LTCSequence's: every input before the LSTM's
constexpr int kNumLSTMInputs = kNumMixedInputs - kNumInputs;

struct Dims {
  int B, T, I, N;
};
struct MixedDims {
  Dims d;
  int F;
};

constexpr float kLog2e = 1.44269504088896341f;

// ---------------------------------------------------------------------------------------------
// Synapse list grouped by destination.
// sigmoid(sigma * (v - mu)) = 1 / (1 + 2^u) with u = c - sl * v (one FMA per synapse).
struct Synapse {
  float wm;     // w * mask
  float sl;     // sigma * log2(e)
  float c;      // sigma * mu * log2(e)
  float erev;   // reversal potential
  float sigma;  // steepness
  float mu;     // midpoint
  int32_t src;  // presynaptic index (input channel for sensory synapses)
  float mask;   // mask value
};
static_assert(sizeof(Synapse) == 32, "one synapse per half cache line");

struct SynapseList {
  std::vector<int32_t> rowptr;  // N + 1 offsets into syn, by destination
  std::vector<Synapse> syn;
  std::vector<int64_t> pos;  // flat index src * N + dst in the (S, N) parameter arrays
  int64_t size() const { return static_cast<int64_t>(syn.size()); }
};

// The same list as flat arrays (structure of arrays, same order, same rowptr) for the
// single-sample step (sample_step.h), padded to `padded` entries, a multiple of 16, with
// zero-weight synapses from source 0 (their activations are computed and never summed).
struct FlatSynapses {
  std::vector<int32_t> rowptr;
  std::vector<float> wm, sl, c, erev;
  std::vector<int32_t> src;
  int64_t padded = 0;
};

// ---------------------------------------------------------------------------------------------
// The problem as the kernels see it: contiguous float32 pointers and sizes.
struct Problem {
  int B = 0, T = 0, I = 0, N = 0, K = 1;
  float eps = 0.0f;
  const float* x = nullptr;   // (B, T, I)
  const float* h0 = nullptr;  // (B, N)
  const float* dt = nullptr;  // (B, T)
  const float* cm = nullptr;  // (N,)
  const float* gl = nullptr;  // (N,)
  const float* vl = nullptr;  // (N,)
  const SynapseList* sens = nullptr;
  const SynapseList* rec = nullptr;
};

// One step of one sample: `ltc` with B = T = 1 (x the mapped inputs), and its synapse lists as
// flat arrays (ltc->sens and ltc->rec are not read).
struct SampleProblem {
  const Problem* ltc = nullptr;
  const FlatSynapses* sens = nullptr;
  const FlatSynapses* rec = nullptr;
};

struct Grads {  // output pointers, all (B,T,I)/(B,N)/(B,T) or parameter shaped, pre-zeroed
  float *dx, *dh0, *ddt;
  float *dsw, *dssigma, *dsmu, *dserev;
  float *dw, *dsigma, *dmu, *derev;
  float *dcm, *dgl, *dvl;
};

// The LSTM part of the problem, next to the LTC Problem.
struct MixedProblem {
  const Problem* ltc = nullptr;
  int F = 0;                    // LSTM input features
  const float* u = nullptr;     // (B, T, F) LSTM inputs
  const float* c0 = nullptr;    // (B, N)
  const float* bias = nullptr;  // (4N,)
  std::vector<float> W;         // (4N, F + N) = [W_x | W_h]
  std::vector<float> Wt;        // (F + N, 4N), its transpose

  // wx (4N, F), wh (4N, N), row-major.
  void set_weights(const float* wx, const float* wh) {
    const int N = ltc->N, M = F + N, J = 4 * N;
    W.resize(static_cast<size_t>(J) * M);
    Wt.resize(static_cast<size_t>(J) * M);
    for (int j = 0; j < J; ++j) {
      for (int f = 0; f < F; ++f) W[static_cast<size_t>(j) * M + f] = wx[static_cast<int64_t>(j) * F + f];
      for (int k = 0; k < N; ++k) W[static_cast<size_t>(j) * M + F + k] = wh[static_cast<int64_t>(j) * N + k];
    }
    for (int j = 0; j < J; ++j)
      for (int m = 0; m < M; ++m) Wt[static_cast<size_t>(m) * J + j] = W[static_cast<size_t>(j) * M + m];
  }
};

struct MixedGrads {  // LSTM gradients, pre-zeroed: du (B, T, F), dwx (4N, F), db (4N), dwh (4N, N), dc0 (B, N)
  float *du, *dwx, *db, *dwh, *dc0;
};

// ---------------------------------------------------------------------------------------------
// Built from a primitive's inputs inside the dispatched task (problem.cpp): strided inputs
// gathered (common::View), synapse lists built, pointers set.

// The synapse list of an (S, N) synapse layer: the synapses k -> i with mask[k, i] != 0, grouped
// by destination i (see cpu/sequence.h).
SynapseList build_synapses(const float* w, const float* sigma, const float* mu, const float* erev, const float* mask,
                           int S, int N);

// What a task owns while it runs: gathered copies of strided inputs (in Input order) and the
// synapse lists.
struct ProblemData {
  std::array<std::vector<float>, kNumInputs> bufs;
  SynapseList sens, rec;
  Problem p;

  ProblemData(const std::vector<common::View>& v, const Dims& d, int K, float eps);
  ProblemData(const ProblemData&) = delete;
  ProblemData& operator=(const ProblemData&) = delete;
};

// The LTC ProblemData plus the LSTM's MixedProblem (all the inputs of Input).
struct MixedProblemData {
  std::unique_ptr<ProblemData> ltc;
  std::array<std::vector<float>, kNumLSTMInputs> bufs;
  MixedProblem m;

  MixedProblemData(const std::vector<common::View>& v, const MixedDims& md, int K, float eps);
  MixedProblemData(const MixedProblemData&) = delete;
  MixedProblemData& operator=(const MixedProblemData&) = delete;
};

}  // namespace ncps::ltc
