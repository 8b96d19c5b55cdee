# Cross-compiling for macOS arm64 (Apple Silicon) from Linux with zig's clang (PyPI `ziglang`):
# scripts/check_macos.sh. The project's own CMakeLists.txt (its APPLE branch) is what gets built.
#
# Cache variables (the script sets them):
#   NCPS_ZIG             the zig executable (site-packages/ziglang/zig)
#   NCPS_MACOS_STUBS     a folder of .tbd stubs (scripts/macos_cross.py stubs): Apple's frameworks
#                        that MLX's CMake target links (Metal, Foundation, QuartzCore, Accelerate),
#                        and the system libc++ (/usr/lib/libc++.1.dylib). zig ships only libSystem's
#                        stub, and would link its own libc++ statically where AppleClang links the
#                        system's dynamically (the launcher below links with `zig cc`, which adds
#                        no libc++, and the stub is linked instead).
# CMAKE_OSX_DEPLOYMENT_TARGET comes from MACOSX_DEPLOYMENT_TARGET, as in the cibuildwheel build
# (pyproject.toml [tool.cibuildwheel.macos]); it becomes part of zig's target triple.
if(CMAKE_CXX_COMPILER_LOADED)  # included again at the end of project() (CMAKE_PROJECT_INCLUDE below)
  foreach(lang C CXX)
    set(CMAKE_${lang}_COMPILE_OPTIONS_IPO "")
    set(CMAKE_${lang}_LINK_OPTIONS_IPO "")
  endforeach()
  return()
endif()
set(CMAKE_PROJECT_INCLUDE "${CMAKE_CURRENT_LIST_FILE}")
set(CMAKE_SYSTEM_NAME Darwin)
set(CMAKE_SYSTEM_PROCESSOR arm64)
set(CMAKE_OSX_ARCHITECTURES "" CACHE STRING "" FORCE)  # zig takes the architecture from -target
set(CMAKE_OSX_SYSROOT "" CACHE PATH "" FORCE)          # no Xcode SDK: zig brings its own libc headers
if(NOT CMAKE_OSX_DEPLOYMENT_TARGET)
  set(CMAKE_OSX_DEPLOYMENT_TARGET "$ENV{MACOSX_DEPLOYMENT_TARGET}")
endif()
if(NOT CMAKE_OSX_DEPLOYMENT_TARGET)
  message(FATAL_ERROR "set MACOSX_DEPLOYMENT_TARGET (pyproject.toml [tool.cibuildwheel.macos] environment)")
endif()
# try_compile projects (compiler checks, check_cxx_source_compiles) see the same variables.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES NCPS_ZIG NCPS_MACOS_STUBS CMAKE_OSX_DEPLOYMENT_TARGET)

set(_ncps_target "aarch64-macos.${CMAKE_OSX_DEPLOYMENT_TARGET}")
set(CMAKE_C_COMPILER "${NCPS_ZIG}" cc -target ${_ncps_target})
set(CMAKE_CXX_COMPILER "${NCPS_ZIG}" c++ -target ${_ncps_target})
# zig configures its libc++ headers for its own static libc++ (-D..._VENDOR_AVAILABILITY_ANNOTATIONS=0:
# everything of the newest libc++ taken as present). Apple's headers have availability markup on, so
# that code compiled for macOS 14 calls only what macOS 14's /usr/lib/libc++.1.dylib exports (e.g.
# not std::__hash_memory, LLVM 21): the same here.
set(CMAKE_CXX_FLAGS_INIT "-U_LIBCPP_HAS_VENDOR_AVAILABILITY_ANNOTATIONS -D_LIBCPP_HAS_VENDOR_AVAILABILITY_ANNOTATIONS=1")
# CMAKE_AR must be one program: small wrappers around `zig ar` / `zig ranlib`.
foreach(tool ar ranlib)
  set(_ncps_wrapper "${CMAKE_BINARY_DIR}/zig-${tool}")
  file(WRITE "${_ncps_wrapper}" "#!/bin/sh\nexec \"${NCPS_ZIG}\" ${tool} \"$@\"\n")
  file(CHMOD "${_ncps_wrapper}" PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE)
  string(TOUPPER ${tool} _ncps_var)
  set(CMAKE_${_ncps_var} "${_ncps_wrapper}" CACHE FILEPATH "" FORCE)
endforeach()
# Links run as `zig cc`: `zig c++` (and -lc++) would link zig's own libc++ statically.
# zig's Mach-O linker takes neither -bundle (CMake's link flag for a MODULE such as a Python
# extension: it links an MH_DYLIB instead, which dlopen and Python's importer take all the same) nor
# a linker response file (nanobind's -Wl,@darwin-ld-cpython.sym, a list of "-U _Py..." leaving
# Python's symbols to the interpreter at load). The launcher turns the latter into
# -undefined dynamic_lookup; scripts/macos_cross.py check then verifies that only Python's symbols
# are left to that lookup.
set(_ncps_launcher "${CMAKE_BINARY_DIR}/zig-link-launcher")
file(WRITE "${_ncps_launcher}" [=[#!/bin/sh
for a; do
  shift
  case "$a" in
    c++) set -- "$@" cc ;;
    -bundle) set -- "$@" -shared ;;
    -Wl,@*darwin-ld-*.sym) set -- "$@" -Wl,-undefined,dynamic_lookup ;;
    *) set -- "$@" "$a" ;;
  esac
done
exec "$@"
]=])
file(CHMOD "${_ncps_launcher}" PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE)
set(CMAKE_CXX_LINKER_LAUNCHER "${_ncps_launcher}")
# zig's Mach-O linker finds the stubs here.
foreach(kind SHARED MODULE EXE)
  set(CMAKE_${kind}_LINKER_FLAGS_INIT "-F${NCPS_MACOS_STUBS}")
endforeach()
set(CMAKE_CXX_STANDARD_LIBRARIES "${NCPS_MACOS_STUBS}/libc++.tbd")
# No install_name_tool here: the module gets its install rpath (@loader_path/...) when linked.
set(CMAKE_BUILD_WITH_INSTALL_RPATH ON)
# No LTO: zig's Mach-O linker takes no LLVM bitcode ("LTO requires using LLD"). nanobind_add_module's
# LTO turns on INTERPROCEDURAL_OPTIMIZATION_RELEASE, so the IPO flags that CMake's Clang module sets
# are emptied after project() (this file is included again there, see the top). With AppleClang, -flto=thin
# changes the code generated, not the symbols the module imports or the flags its sources see.

set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
