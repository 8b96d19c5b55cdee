// The plan of a fused CfC call (see problem.h).
#include "cfc/problem.h"

namespace ncps::cfc {

// ---- plan ---------------------------------------------------------------------------------------

Plan make_plan(const Config& cfg, int B, int T, int I, bool saved, common::Storage act) {
  Plan p;
  p.cfg = cfg;
  p.B = B;
  p.T = T;
  p.I = I;
  p.act = saved ? act : common::Storage::f32;
  p.grads = p.act == common::Storage::bf16 ? common::Storage::bf16 : common::Storage::f32;
  const bool every_step = saved && !p.copies();  // the working arrays are what the backward reads
  p.ws_steps = every_step ? T : hoist_block(B, T);
  p.hh_steps = every_step ? T + 1 : 2;
  const int64_t TB = static_cast<int64_t>(T) * B;
  const int64_t WB = static_cast<int64_t>(p.ws_steps) * B;  // rows of a per-step activation
  int idx = 3;
  int N = 0;
  for (int n : cfg.unit_sizes) N += n;
  p.N = N;
  if (cfg.mixed) {
    p.c0 = idx++;
    p.lwx = idx++;
    p.lb = idx++;
    p.lwh = idx++;
  }
  int64_t off = 0;
  auto take = [&off](int64_t n) {
    const int64_t o = off;
    off += n;
    return o;
  };
  p.xt_off = take(TB * I);
  p.dt_off = take(TB);
  p.hh_off = take(static_cast<int64_t>(p.hh_steps) * B * N);
  if (cfg.mixed) {
    p.hl_off = take(WB * N);
    p.gates_off = take(WB * 4 * N);
    p.cc_off = take((TB + B) * N);
  }
  int col = 0, in = I;
  for (size_t u = 0; u < cfg.unit_sizes.size(); ++u) {
    Unit U;
    U.n = cfg.unit_sizes[u];
    U.off = col;
    U.in = in;
    U.K = in + U.n;
    U.widths = cfg.backbone[u];
    U.head_in = U.widths.empty() ? U.K : U.widths.back();
    U.hn = cfg.mode == PURE ? U.n : 4 * U.n;
    U.hs = cfg.mode == PURE ? 2 * U.n : 4 * U.n;
    for (size_t l = 0; l < U.widths.size(); ++l) {
      U.bw.push_back(idx++);
      U.bb.push_back(idx++);
      U.a_off.push_back(take(WB * U.widths[l]));
      U.z_off.push_back(take(WB * U.widths[l]));
    }
    const int nh = cfg.mode == PURE ? 1 : 4;
    for (int k = 0; k < nh; ++k) {
      U.head_w[k] = idx++;
      U.head_b[k] = idx++;
    }
    if (cfg.mode == PURE) {
      U.w_tau = idx++;
      U.A = idx++;
    }
    if (cfg.masked[u]) U.mask = idx++;
    U.heads_off = take(WB * U.hs);
    p.units.push_back(U);
    col += U.n;
    in = U.n;
  }
  // The backward's copies: the working arrays themselves, or half arrays of every step.
  auto copy = [&](int64_t work, int64_t n) { return p.copies() ? take((n + 1) / 2) : work; };
  p.hh_sav = copy(p.hh_off, (TB + B) * N);
  if (cfg.mixed) {
    p.hl_sav = copy(p.hl_off, TB * N);
    p.gates_sav = copy(p.gates_off, TB * 4 * N);
  }
  for (Unit& U : p.units) {
    for (size_t l = 0; l < U.widths.size(); ++l) {
      U.a_sav.push_back(copy(U.a_off[l], TB * U.widths[l]));
      U.z_sav.push_back(copy(U.z_off[l], TB * U.widths[l]));
    }
    U.heads_sav = copy(U.heads_off, TB * U.hs);
  }
  p.n_inputs = idx;
  p.ws_size = off;
  return p;
}

std::vector<std::vector<int>> input_shapes(const Plan& p) {
  std::vector<std::vector<int>> s(p.n_inputs);
  const int B = p.B, T = p.T, I = p.I, N = p.N;
  s[0] = p.cfg.step ? std::vector<int>{B, I} : std::vector<int>{B, T, I};
  s[1] = {B, N};
  s[2] = {B, T};
  if (p.cfg.mixed) {
    s[p.c0] = {B, N};
    s[p.lwx] = {4 * N, I};
    s[p.lb] = {4 * N};
    s[p.lwh] = {4 * N, N};
  }
  for (const Unit& U : p.units) {
    for (size_t l = 0; l < U.widths.size(); ++l) {
      s[U.bw[l]] = {U.widths[l], l == 0 ? U.K : U.widths[l - 1]};
      s[U.bb[l]] = {U.widths[l]};
    }
    for (int k = 0; k < 4; ++k) {
      if (U.head_w[k] < 0) continue;
      s[U.head_w[k]] = {U.n, U.head_in};
      s[U.head_b[k]] = {U.n};
    }
    if (U.w_tau >= 0) {
      s[U.w_tau] = {1, U.n};
      s[U.A] = {1, U.n};
    }
    if (U.mask >= 0) s[U.mask] = {U.n, U.head_in};
  }
  return s;
}

std::vector<std::string> input_names(const Plan& p) {
  std::vector<std::string> s(p.n_inputs);
  s[0] = "x";
  s[1] = "h0";
  s[2] = "dt";
  if (p.cfg.mixed) {
    s[p.c0] = "c0";
    s[p.lwx] = "lstm input_map.weight";
    s[p.lb] = "lstm input_map.bias";
    s[p.lwh] = "lstm recurrent_map.weight";
  }
  static const char* heads[4] = {"ff1", "ff2", "time_a", "time_b"};
  for (size_t u = 0; u < p.units.size(); ++u) {
    const Unit& U = p.units[u];
    const std::string pre = p.units.size() > 1 ? "layer_" + std::to_string(u) + "." : "";
    for (size_t l = 0; l < U.widths.size(); ++l) {
      s[U.bw[l]] = pre + "backbone." + std::to_string(l) + ".weight";
      s[U.bb[l]] = pre + "backbone." + std::to_string(l) + ".bias";
    }
    for (int k = 0; k < 4; ++k) {
      if (U.head_w[k] < 0) continue;
      s[U.head_w[k]] = pre + heads[k] + ".weight";
      s[U.head_b[k]] = pre + heads[k] + ".bias";
    }
    if (U.w_tau >= 0) {
      s[U.w_tau] = pre + "w_tau";
      s[U.A] = pre + "A";
    }
    if (U.mask >= 0) s[U.mask] = pre + "sparsity_mask";
  }
  return s;
}

double step_flops(const Plan& p) {
  double f = 0;
  for (const Unit& U : p.units) {
    int prev = U.K;
    for (int w : U.widths) {
      f += 2.0 * prev * w;
      prev = w;
    }
    f += 2.0 * prev * U.hn;
  }
  if (p.cfg.mixed) f += 2.0 * 4 * p.N * (p.N + p.I);
  return f;
}

int64_t backward_scratch_size(const Plan& p) {
  const int64_t TB = static_cast<int64_t>(p.T) * p.B;
  auto grad = [&p](int64_t n) { return p.grads == common::Storage::f32 ? n : (n + 1) / 2; };
  int64_t n = TB;  // dL/d dt
  for (const Unit& U : p.units) {
    n += grad(TB * U.hn);
    for (int w : U.widths) n += grad(TB * w);
  }
  if (p.cfg.mixed) n += grad(TB * 4 * p.N);
  if (p.cfg.mode != PURE) n += TB * static_cast<int64_t>(p.units.size());  // dL/d dt per unit (folded time heads)
  return n;
}

}  // namespace ncps::cfc
