// The Python side of a prepared streaming step (ncps._ext.CfCStep, LTCStep): one call takes
// (x, h, ts) and returns the evaluated (output, new_state), with the per-call Python work of
// `Cell.infer` (gathering the parameters, planning, validating) done once when it is built.
//
// A step object holds a `Core` (the prepared parameters and the kernel: cfc/ops.h, ltc/ops.h)
// and a ParamGuard: the identities of everything the core was prepared from, in the cell's
// module tree. MLX arrays are immutable, so every parameter change (an optimizer step, `update`,
// `load_weights`, `set_dtype`, assigning an attribute, `train()` / `eval()`) replaces an object
// in one of the tree's dicts or lists (or, for an in-place array update, the array's descriptor);
// the guard sees it and the call answers "stale" (None), and
// the cell rebuilds the step. Anything the fast path does not handle (a wrong shape, a non-float
// dtype, a negative ts, a non-finite x) is also answered with None, so that the cell's checked path raises the
// clear Python exception; nothing unchecked reaches the kernel.
#pragma once

#include <nanobind/nanobind.h>

#include <cmath>
#include <limits>
#include <optional>
#include <utility>
#include <vector>

#include "common/ops.h"
#include "mlx/array.h"
#include "mlx/ops.h"
#include "mlx/transforms.h"

namespace ncps::common {

namespace nb = nanobind;
namespace mx = mlx::core;

// The identities of a module tree's contents: edges (container, key, expected) where the
// container is a dict (nn.Module is one; also a module's __dict__) or a list (key: its index).
class ParamGuard {
 public:
  explicit ParamGuard(const nb::list& edges) {
    edges_.reserve(nb::len(edges));
    for (nb::handle e : edges) {
      nb::tuple t = nb::cast<nb::tuple>(e);
      if (t.size() != 3) throw std::invalid_argument("ParamGuard: edges are (container, key, expected) triples");
      Edge g{nb::borrow(t[0]), nb::borrow(t[1]), nb::borrow(t[2])};
      // An mx.array can also change in place (`w[...] = v`, `w += d` keep the Python object and
      // swap its descriptor): its descriptor is compared too, and held so that its address
      // cannot be reused by a later one while the guard lives.
      if (nb::isinstance<mx::array>(g.expected)) g.array = *nb::inst_ptr<mx::array>(g.expected);
      PyObject* c = g.container.ptr();
      if (PyList_Check(c)) {
        g.index = nb::cast<Py_ssize_t>(g.key);
        g.size = PyList_GET_SIZE(c);
      } else if (!PyDict_Check(c)) {
        throw std::invalid_argument("ParamGuard: a container must be a dict or a list");
      }
      edges_.push_back(std::move(g));
    }
  }

  // True while every container still holds the expected object under its key (pointer
  // comparisons: about 6 ns an edge). The guard keeps the expected objects alive, so an
  // identity cannot be reused by a new object while it is held.
  bool valid() const {
    if (cleared_) return false;
    for (const Edge& e : edges_) {
      PyObject* c = e.container.ptr();
      PyObject* got;
      if (e.size >= 0) {
        if (PyList_GET_SIZE(c) != e.size) return false;
        got = PyList_GET_ITEM(c, e.index);
      } else {
        got = PyDict_GetItemWithError(c, e.key.ptr());
        if (got == nullptr && PyErr_Occurred()) {
          PyErr_Clear();
          return false;
        }
      }
      if (got != e.expected.ptr()) return false;
      if (e.array && nb::inst_ptr<mx::array>(got)->id() != e.array->id()) return false;
    }
    return true;
  }

  // Cyclic garbage collection: the cell holds its step and the step holds the cell's dicts, so
  // the objects are visited (tp_traverse) and dropped (tp_clear) for the collector to free both.
  int traverse(visitproc visit, void* arg) const {
    for (const Edge& e : edges_) {
      Py_VISIT(e.container.ptr());
      Py_VISIT(e.key.ptr());
      Py_VISIT(e.expected.ptr());
    }
    return 0;
  }
  void clear() {
    cleared_ = true;
    edges_.clear();
  }

 private:
  struct Edge {
    nb::object container, key, expected;
    Py_ssize_t index = 0, size = -1;  // size >= 0: a list of that length
    std::optional<mx::array> array;   // the expected mx.array's descriptor, when it is one
  };
  std::vector<Edge> edges_;
  bool cleared_ = false;
};

// Whether an mx.array still has the descriptor it had when the token was taken: an in-place
// update (`w[...] = v`) keeps the Python object but swaps its descriptor. The token holds the
// descriptor, so its id cannot be reused by a later one while the token lives; it holds no
// Python object (no reference cycle through the cell that keeps it).
class ArrayToken {
 public:
  explicit ArrayToken(const mx::array& a) : held_(a) {}
  bool same(const mx::array& a) const { return a.id() == held_.id(); }

 private:
  mx::array held_;
};

// An evaluated float32 array rounded to the half type `dtype`.
inline mx::array narrowed(const mx::array& a, mx::Dtype dtype) {
  mx::array out(mx::allocator::malloc(a.size() * mx::size_of(dtype)), a.shape(), dtype);
  narrow(storage_of(dtype, "narrowed"), a.data<float>(), static_cast<int64_t>(a.size()), out.data<char>());
  return out;
}

// Per-thread scratch of a step call: gathered copies of strided arguments, and dt. (Plain floats:
// no MLX object outlives a call in thread-local storage.)
struct StepScratch {
  std::vector<float> xbuf, hbuf, dtbuf, tsbuf;
};

// The prepared step bound to Python: `step(x, h, ts) -> (output, state) | None` (None: stale
// guard or arguments the fast path does not take), `valid()`.
template <class Core>
class StreamStep {
 public:
  StreamStep(const nb::list& edges, Core core) : guard_(edges), core_(std::move(core)) {}

  bool valid() const { return guard_.valid(); }

  // The type slots that make a bound StreamStep<Core> collectable (nb::type_slots).
  static PyType_Slot* gc_slots() {
    static PyType_Slot slots[] = {{Py_tp_traverse, reinterpret_cast<void*>(&tp_traverse)},
                                  {Py_tp_clear, reinterpret_cast<void*>(&tp_clear)},
                                  {0, nullptr}};
    return slots;
  }

  nb::object step(nb::handle xo, nb::handle ho, nb::handle tso) {
    if (!guard_.valid()) return nb::none();
    if (!nb::isinstance<mx::array>(xo) || !nb::isinstance<mx::array>(ho)) return nb::none();
    const mx::array& x = *nb::inst_ptr<mx::array>(xo);
    const mx::array& h = *nb::inst_ptr<mx::array>(ho);
    const int I = core_.input_size(), N = core_.state_size();
    if (x.ndim() != 2 || x.shape(1) != I || x.shape(0) < 1) return nb::none();
    const int B = x.shape(0);
    if (h.ndim() != 2 || h.shape(0) != B || h.shape(1) != N) return nb::none();
    thread_local StepScratch s;
    s.dtbuf.resize(static_cast<size_t>(B));
    mx::array hold_x = x, hold_h = h, hold_ts = x;  // converted or evaluated copies live here
    PyObject* t = tso.ptr();
    if (PyFloat_Check(t) || (PyLong_Check(t) && !PyBool_Check(t))) {
      // A scalar elapsed time must be finite and >= 0; the checked path raises otherwise.
      const double v = PyFloat_AsDouble(t);
      if (v == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        return nb::none();
      }
      if (!(std::isfinite(v) && v >= 0)) return nb::none();
      std::fill(s.dtbuf.begin(), s.dtbuf.end(), static_cast<float>(v));
    } else if (nb::isinstance<mx::array>(tso)) {
      const mx::array& ts = *nb::inst_ptr<mx::array>(tso);
      const bool shaped =
          (ts.ndim() == 1 && ts.shape(0) == B) || (ts.ndim() == 2 && ts.shape(0) == B && ts.shape(1) == 1);
      if (!shaped) return nb::none();
      const float* p = host_floats(ts, hold_ts, s.tsbuf);
      if (p == nullptr) return nb::none();
      // Invalid per-sample times (negative, NaN, inf) become NaN, as on the checked path: the
      // sample's state turns NaN instead of a plausible number.
      for (int b = 0; b < B; ++b)
        s.dtbuf[b] = (p[b] >= 0 && p[b] < std::numeric_limits<float>::infinity()) ? p[b] : std::nanf("");
    } else {
      return nb::none();
    }
    const float* xp = host_floats(x, hold_x, s.xbuf);
    const float* hp = host_floats(h, hold_h, s.hbuf);
    if (xp == nullptr || hp == nullptr) return nb::none();
    // A non-finite input would saturate the gates into a plausible number: the checked path turns
    // it into NaN (docs/reliability.md). B*I comparisons, next to the step's B*N*(I+N) products.
    for (size_t i = 0, n = static_cast<size_t>(B) * I; i < n; ++i)
      if (!std::isfinite(xp[i])) return nb::none();
    auto [y, state] = core_.run(B, xp, hp, s.dtbuf.data());
    // Results in the promoted dtype of x, h and the parameters, as the graph path gives them.
    const mx::Dtype dtype = mx::promote_types(mx::promote_types(x.dtype(), h.dtype()), core_.param_dtype());
    if (dtype != mx::float32 && is_storage(dtype)) return nb::make_tuple(narrowed(y, dtype), narrowed(state, dtype));
    return nb::make_tuple(std::move(y), std::move(state));
  }

 private:
  static int tp_traverse(PyObject* self, visitproc visit, void* arg) {
    Py_VISIT(Py_TYPE(self));
    // Called possibly before the C++ object is constructed: only a ready instance has a guard.
    if (!nb::inst_ready(self)) return 0;
    return nb::inst_ptr<StreamStep>(self)->guard_.traverse(visit, arg);
  }
  static int tp_clear(PyObject* self) {
    if (nb::inst_ready(self)) nb::inst_ptr<StreamStep>(self)->guard_.clear();
    return 0;
  }

  ParamGuard guard_;
  Core core_;
};

}  // namespace ncps::common
