// The one nanobind module of the package: every primitive's op is bound here.
#include <nanobind/nanobind.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/variant.h>
#include <nanobind/stl/vector.h>

#include "build_info.h"

namespace nb = nanobind;
using namespace nb::literals;

NB_MODULE(_ext, m) {
  m.doc() = "ncps fused MLX primitives";
  m.def("build_info", &ncps::build_info, "How the extension was built.");
  m.def("max_threads", &ncps::max_threads, "Threads the CPU kernels may use.");
}
