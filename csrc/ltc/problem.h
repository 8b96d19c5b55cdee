// The LTC kernels' problem as plain data: the types shared by the baseline files (problem.h builds
// them from a primitive's inputs) and the kernels (kernel.h, mixed_kernel.h: compiled once per
// instruction-set target, common/isa.h), and the kernels' entry points, one specialisation per
// target (kernels.cpp). Types and declarations only: no code here runs on a wider target.
#pragma once

#include <cstdint>
#include <vector>

namespace ncps::ltc::cpu {

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

// The kernels for target Isa; run the chosen one with
//   common::dispatch([&]<class Isa>() { cpu::forward<Isa>(p, states); });
// forward: states (B, T, N). backward: the gradients of every input (pre-zeroed) from the
// forward's states and their cotangent. mixed_*: the same with the LSTM (states and cells).
template <class Isa>
void forward(const Problem& p, float* states);
template <class Isa>
void backward(const Problem& p, const float* states, const float* cot, const Grads& g);
template <class Isa>
void mixed_forward(const MixedProblem& m, float* states, float* cells);
// sample_forward: the new state (N) of one sample after one step; ws: 2 * max(sens->padded,
// rec->padded) + 4 * N floats of scratch.
template <class Isa>
void sample_forward(const SampleProblem& p, float* state, float* ws);
template <class Isa>
void mixed_backward(const MixedProblem& m, const float* states, const float* cells, const float* cot_s,
                    const float* cot_c, const Grads& g, const MixedGrads& mg);

}  // namespace ncps::ltc::cpu
