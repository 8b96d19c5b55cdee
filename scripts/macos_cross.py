"""Helpers of scripts/check_macos.sh: the macOS arm64 cross build of the extension, checked on Linux.

Subcommands (run with the host venv's Python; macholib comes with delocate):
  config                 the cibuildwheel macOS configuration of pyproject.toml as shell assignments
  stubs SITE OUT         text stubs (.tbd) of the Apple libraries that MLX's macOS build links, for zig
  wheel SITE EXT OUTDIR  the wheel: python/ncps plus the extension, tagged for macOS arm64
  check SITE EXT         the link checks of tests/platform/test_macos.py, printed (exit 1 on a problem)
  otool -arch all -m (-L|-D|-l) FILE
                         the three `otool` listings that delocate parses (there is no otool off macOS)

The stubs: MLX's CMake target links Metal, Foundation, QuartzCore and Accelerate by their Xcode paths,
and AppleClang links the system libc++ (/usr/lib/libc++.1.dylib) dynamically. zig brings libSystem's
stub only (and would link its own libc++ statically), so each library is stood in for by a .tbd stub
with its real install name. The libc++ stub exports the libc++ symbols that MLX's own libmlx.dylib
and core.*.so import (MLX is built with minos 14.0, so each of them exists in macOS 14's libc++) and
LIBCXX_BASELINE below; a libc++ symbol of ours outside that set is left unbound, and `check` names it.
"""

from __future__ import annotations

import base64
import hashlib
import re
import sys
import zipfile
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]

# Load commands naming a library the image needs at load time.
LC_LOAD_DYLIB, LC_LOAD_WEAK_DYLIB, LC_REEXPORT_DYLIB, LC_LOAD_UPWARD_DYLIB = 0xC, 0x80000018, 0x8000001F, 0x80000023
LC_RPATH, LC_BUILD_VERSION, LC_ID_DYLIB = 0x8000001C, 0x32, 0xD
DYLIB_COMMANDS = (LC_LOAD_DYLIB, LC_LOAD_WEAK_DYLIB, LC_REEXPORT_DYLIB, LC_LOAD_UPWARD_DYLIB)
SYSTEM_PREFIXES = ("/usr/lib/", "/System/Library/")
LIBCXX = "/usr/lib/libc++.1.dylib"
LIBSYSTEM = "/usr/lib/libSystem.B.dylib"
# libc++ (and the libc++abi it re-exports) symbols that every macOS since 10.13 exports, listed by
# hand because MLX happens not to import them: operator new/delete with the sized (10.12) and aligned
# (10.13) forms, __dynamic_cast, std::logic_error, std::mutex::try_lock, std::thread::detach. A libc++
# symbol of ours outside MLX's imports and this list fails the link check by name: look up the first
# macOS whose libc++ exports it, and add it here if that is <= the deployment target.
LIBCXX_BASELINE = {
    *(f"__Z{op}{args}" for op in ("nwm", "nam") for args in ("", "St11align_val_t", "RKSt9nothrow_t")),
    *(f"__Z{op}{args}" for op in ("dlPv", "daPv") for args in ("", "m", "St11align_val_t", "mSt11align_val_t")),
    "___dynamic_cast",
    "__ZNSt11logic_errorC1EPKc",
    "__ZNSt11logic_errorC2EPKc",
    "__ZNSt11logic_errorD1Ev",
    "__ZNSt11logic_errorD2Ev",
    "__ZTISt11logic_error",
    "__ZTVSt11logic_error",
    "__ZNSt3__15mutex8try_lockEv",
    "__ZNSt3__16thread6detachEv",
}


class MachOImage:
    """One thin Mach-O image: its load commands and its defined and undefined external symbols.

    ``imports`` maps each undefined symbol to the install name of the library it binds to (two-level
    namespace: the library ordinal in n_desc), or to "dynamic_lookup" / "self" / "executable".
    """

    def __init__(self, path: Path) -> None:
        from macholib.MachO import MachO  # delocate's dependency: imported here, so `config` needs none
        from macholib.SymbolTable import SymbolTable

        self.path = Path(path)
        macho = MachO(str(path))
        if len(macho.headers) != 1:
            raise ValueError(f"{path}: a fat binary ({len(macho.headers)} images)")
        header = macho.headers[0]
        self.cputype = header.header.cputype
        self.filetype = header.header.filetype
        self.libraries: list[str] = []
        self.rpaths: list[str] = []
        self.install_name: str | None = None
        self.minos: str | None = None
        self.platform: int | None = None
        self.dylib_versions: dict[str, tuple[str, str]] = {}  # compatibility, current
        for lc, cmd, data in header.commands:
            if lc.cmd in DYLIB_COMMANDS or lc.cmd == LC_ID_DYLIB:
                self.dylib_versions[_cstr(data)] = (str(cmd.compatibility_version), str(cmd.current_version))
            if lc.cmd in DYLIB_COMMANDS:
                self.libraries.append(_cstr(data))
            elif lc.cmd == LC_ID_DYLIB:
                self.install_name = _cstr(data)
            elif lc.cmd == LC_RPATH:
                self.rpaths.append(_cstr(data))
            elif lc.cmd == LC_BUILD_VERSION:
                self.platform = cmd.platform
                self.minos = _version(cmd.minos)
        table = SymbolTable(macho, header)
        self.exports = {name.decode() for nlist, name in table.extdefsyms}
        self.imports: dict[str, str] = {}
        for nlist, name in table.undefsyms:
            ordinal = (nlist.n_desc >> 8) & 0xFF
            if 1 <= ordinal <= len(self.libraries):
                lib = self.libraries[ordinal - 1]
            else:  # 0: self, 0xfe: dynamic_lookup (flat), 0xff: the main executable
                lib = {0: "self", 0xFE: "dynamic_lookup", 0xFF: "executable"}.get(ordinal, f"ordinal {ordinal}")
            self.imports[name.decode()] = lib


def _cstr(data: bytes) -> str:
    return data.split(b"\0", 1)[0].decode()


def _version(packed: int) -> str:
    major, minor, patch = packed >> 16, (packed >> 8) & 0xFF, packed & 0xFF
    return f"{major}.{minor}" + (f".{patch}" if patch else "")


def cibuildwheel_macos() -> dict[str, str]:
    """What the cibuildwheel macOS build uses, read from pyproject.toml.

    Returns MACOSX_DEPLOYMENT_TARGET, ARCH (the one arm64 arch), BUILD_TYPE and CMAKE_DEFINES (the
    -D options of [tool.scikit-build] cmake.define, space-separated).
    """
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    skb = project["tool"]["scikit-build"]
    mac = project["tool"]["cibuildwheel"]["macos"]
    archs = mac.get("archs", [])
    if archs != ["arm64"]:
        raise SystemExit(f"[tool.cibuildwheel.macos] archs is {archs!r}; this check cross-builds arm64 only")
    target = mac.get("environment", {}).get("MACOSX_DEPLOYMENT_TARGET")
    if not target or not re.fullmatch(r"\d+\.\d+", target):
        raise SystemExit("[tool.cibuildwheel.macos] environment sets no MACOSX_DEPLOYMENT_TARGET (e.g. 14.0)")
    defines = " ".join(f"-D{k}={v}" for k, v in skb.get("cmake", {}).get("define", {}).items())
    return {
        "MACOSX_DEPLOYMENT_TARGET": target,
        "ARCH": archs[0],
        "BUILD_TYPE": skb.get("cmake", {}).get("build-type", "Release"),
        "CMAKE_DEFINES": defines,
    }


def mlx_images(site: Path) -> list[MachOImage]:
    """MLX's own macOS binaries in the unpacked wheels: libmlx.dylib and core.cpython-*-darwin.so."""
    core = sorted((site / "mlx").glob("core.cpython-*-darwin.so"))
    return [MachOImage(site / "mlx" / "lib" / "libmlx.dylib"), *(MachOImage(p) for p in core)]


def _tbd(install_name: str, symbols: list[str]) -> str:
    lines = ["--- !tapi-tbd", "tbd-version: 4", "targets: [ arm64-macos ]", f"install-name: '{install_name}'"]
    if symbols:
        lines += ["exports:", "  - targets: [ arm64-macos ]", "    symbols: ["]
        lines += [f"      '{s}'," for s in symbols[:-1]] + [f"      '{symbols[-1]}' ]"]
    return "\n".join([*lines, "...", ""])


def write_stubs(site: Path, out: Path) -> None:
    """The framework stubs (FW.framework/FW.tbd) and libc++.tbd, see the module docstring."""
    images = mlx_images(site)
    out.mkdir(parents=True, exist_ok=True)
    for lib in images[0].libraries:
        m = re.fullmatch(r"/System/Library/Frameworks/(\w+)\.framework/.*", lib)
        if m:  # no symbols: nothing of ours may call a framework directly (MLX does that)
            (out / f"{m[1]}.framework").mkdir(exist_ok=True)
            (out / f"{m[1]}.framework" / f"{m[1]}.tbd").write_text(_tbd(lib, []))
    cxx = sorted(libcxx_exports(images))
    if len(cxx) == len(LIBCXX_BASELINE):
        raise SystemExit(f"no libc++ imports found in {images[0].path}: is it MLX's macOS libmlx.dylib?")
    (out / "libc++.tbd").write_text(_tbd(LIBCXX, cxx))


def libcxx_exports(images: list[MachOImage]) -> set[str]:
    """What the extension may import from /usr/lib/libc++.1.dylib: MLX's imports from it, plus the baseline."""
    return {s for image in images for s, lib in image.imports.items() if lib == LIBCXX} | LIBCXX_BASELINE


def libsystem_exports() -> set[str]:
    """The symbols of zig's libSystem stub (arm64-macos): what the extension may import from it."""
    import ziglang

    text = (Path(ziglang.__file__).parent / "lib" / "libc" / "darwin" / "libSystem.tbd").read_text()
    names: set[str] = set()
    # One document per re-exported library; in each, "- targets: [...]" sections list symbols.
    for section in re.split(r"\n\s*- targets:", text):
        if "arm64" not in section.split("]", 1)[0]:  # zig links arm64 against the arm64e entries
            continue
        for group in re.findall(r"(?:symbols|weak-symbols|thread-local-symbols):\s*\[([^\]]*)\]", section):
            names.update(s.strip().strip("'\"") for s in group.split(",") if s.strip())
    return names


def wheel(site: Path, ext: Path, outdir: Path) -> Path:
    """A wheel of python/ncps (sources only, no Linux build products) plus the cross-built extension."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    name, version = project["name"], project["version"]
    pyver = re.fullmatch(r"_ext\.cpython-(\d+)-darwin\.so", ext.name)
    if not pyver:
        raise SystemExit(f"unexpected extension name {ext.name}")
    target = cibuildwheel_macos()["MACOSX_DEPLOYMENT_TARGET"].replace(".", "_")
    tag = f"cp{pyver[1]}-cp{pyver[1]}-macosx_{target}_arm64"
    outdir.mkdir(parents=True, exist_ok=True)
    for old in outdir.glob(f"{name}-*.whl"):
        old.unlink()
    path = outdir / f"{name}-{version}-{tag}.whl"
    files: list[tuple[str, bytes]] = []
    pkg = ROOT / "python" / "ncps"
    for f in sorted(pkg.rglob("*")):
        rel = f.relative_to(pkg.parent).as_posix()
        if f.is_file() and "__pycache__" not in f.parts and f.suffix not in (".so", ".pyc", ".pyd", ".dylib"):
            files.append((rel, f.read_bytes()))
    files.append((f"ncps/{ext.name}", ext.read_bytes()))
    # The GPU kernel sources, as CMakeLists.txt installs them (read at run time by ncps.backends.gpu).
    for f in sorted((ROOT / "kernels").rglob("*")):
        if f.is_file():
            files.append((f"ncps/backends/gpu/kernels/{f.relative_to(ROOT / 'kernels').as_posix()}", f.read_bytes()))
    deps = "".join(f"Requires-Dist: {d}\n" for d in project.get("dependencies", []))
    dist = f"{name}-{version}.dist-info"
    files.append((f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n{deps}".encode()))
    files.append(
        (f"{dist}/WHEEL", f"Wheel-Version: 1.0\nGenerator: check_macos\nRoot-Is-Purelib: false\nTag: {tag}\n".encode())
    )
    record = [f"{rel},sha256={_b64(hashlib.sha256(data).digest())},{len(data)}" for rel, data in files]
    files.append((f"{dist}/RECORD", ("\n".join([*record, f"{dist}/RECORD,,"]) + "\n").encode()))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel, data in files:
            zf.writestr(rel, data)
    return path


def _b64(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def problems(site: Path, ext: Path) -> list[str]:
    """Every reason the extension would not load on macOS arm64 >= the deployment target (empty: none).

    An undefined symbol must be bound to libmlx.dylib, libc++ or libSystem and be exported there,
    except Python's own (flat lookup at load, as macOS extension modules do: nanobind's -U list).
    """
    image = MachOImage(ext)
    libmlx, core = mlx_images(site)[:2]
    provided = {
        "@rpath/libmlx.dylib": libmlx.exports,
        LIBCXX: libcxx_exports(mlx_images(site)),
        LIBSYSTEM: libsystem_exports(),
    }
    out = []
    if image.cputype != 16777228:  # CPU_TYPE_ARM64
        out.append(f"cputype {image.cputype}, not arm64")
    target = cibuildwheel_macos()["MACOSX_DEPLOYMENT_TARGET"]
    if image.platform != 1 or image.minos is None or _key(image.minos) > _key(target):
        out.append(f"platform {image.platform} minos {image.minos}: not macOS <= {target}")
    if "@rpath/libmlx.dylib" not in image.libraries:
        out.append(f"does not load @rpath/libmlx.dylib: {image.libraries}")
    # MLX's core.so sits in mlx/ and finds mlx/lib by @loader_path/lib; ours sits in ncps/.
    if core.rpaths != ["@loader_path/lib"] or image.rpaths != ["@loader_path/../mlx/lib"]:
        out.append(f"rpaths {image.rpaths} (MLX's core: {core.rpaths}); expected ['@loader_path/../mlx/lib']")
    if "_PyInit__ext" not in image.exports:
        out.append("PyInit__ext is not exported")
    for lib in image.libraries:
        if not (lib.startswith(SYSTEM_PREFIXES) or lib == "@rpath/libmlx.dylib"):
            out.append(f"loads {lib}: neither MLX nor a system library")
    for sym, lib in sorted(image.imports.items()):
        if lib in ("dynamic_lookup", "self") and re.match(r"__?Py", sym):
            continue  # Python's C API, left to the interpreter at load (zig records ordinal 0 for it)
        if lib in provided and sym in provided[lib]:
            continue
        if lib.startswith("/System/Library/Frameworks/"):
            out.append(f"{sym} from {lib}: the extension must not call a framework itself")
        else:
            out.append(f"{sym}: bound to {lib}, not exported there")
    for sym in image.imports:
        if re.search(r"(glibc|GLIBC|__libc_|__errno_location|gnu_get_libc|_dl_|__cxa_thread_atexit_impl)", sym):
            out.append(f"{sym}: a Linux-only symbol")
    return out


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def otool(argv: list[str]) -> str:
    """What `otool -arch all -m -L|-D|-l FILE` prints, as far as delocate reads it (file header line,
    then: the install id and the libraries with their versions, or the install id, or the LC_RPATHs)."""
    flag, path = argv[-2], argv[-1]
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic not in (b"\xcf\xfa\xed\xfe", b"\xce\xfa\xed\xfe", b"\xca\xfe\xba\xbe"):
        return f"{path}: is not an object file\n"  # otool's wording, which delocate recognises
    image = MachOImage(Path(path))
    lines = [f"{path}:"]
    if flag == "-L":
        names = ([image.install_name] if image.install_name else []) + image.libraries
        for name in names:
            compat, current = image.dylib_versions[name]
            lines.append(f"\t{name} (compatibility version {compat}, current version {current})")
    elif flag == "-D":
        lines += [image.install_name] if image.install_name else []
    elif flag == "-l":
        for rpath in image.rpaths:
            lines += [
                "Load command",
                "          cmd LC_RPATH",
                "      cmdsize 32",
                f"         path {rpath} (offset 12)",
            ]
    else:
        raise SystemExit(f"otool shim: unsupported {argv}")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if argv[0] == "otool":
        sys.stdout.write(otool(argv[1:]))
        return 0
    cmd, args = argv[0], [Path(a) for a in argv[1:]]
    if cmd == "config":
        for key, value in cibuildwheel_macos().items():
            print(f"{key}='{value}'")
    elif cmd == "stubs":
        write_stubs(*args)
    elif cmd == "wheel":
        print(wheel(*args))
    elif cmd == "check":
        found = problems(*args)
        for p in found:
            print(f"[check_macos] PROBLEM: {p}")
        return 1 if found else 0
    else:
        raise SystemExit(f"unknown subcommand {cmd}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
