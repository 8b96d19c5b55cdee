"""The extension cross-built for macOS arm64 (Apple Silicon) links as a Mac would load it.

scripts/check_macos.sh builds CMakeLists.txt with zig's clang for aarch64-macos at the deployment
target of pyproject.toml [tool.cibuildwheel.macos], against MLX's macOS wheels (downloaded once,
cached under build/macos/), and assembles the wheel. Nothing is executed (no Mac here): these tests
read the Mach-O files. Skipped, with the reason, only when MLX's macOS wheels cannot be downloaded.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "check_macos.sh"
OUT = ROOT / "build" / "macos"
PYTAG = f"{sys.version_info[0]}{sys.version_info[1]}"

pytestmark = [
    pytest.mark.skipif(sys.platform != "linux", reason="the cross-build runs on Linux"),
    pytest.mark.skipif(sys.version_info < (3, 11), reason="scripts/macos_cross.py reads pyproject.toml with tomllib"),
]


def _helper():
    spec = importlib.util.spec_from_file_location("macos_cross", ROOT / "scripts" / "macos_cross.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def built() -> dict:
    """Runs scripts/check_macos.sh once; its wheel, extension, MLX's unpacked wheels and the helper."""
    env = {**os.environ, "NCPS_HOST_PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(SCRIPT)], cwd=ROOT, capture_output=True, text=True, timeout=1200, env=env)
    out = proc.stdout + proc.stderr
    if proc.returncode == 2 and "MLX's macOS wheels" in out:
        pytest.skip(out.strip().splitlines()[-1])
    assert proc.returncode == 0, out[-6000:]
    wheel = Path(re.findall(r"\[check_macos\] ok: (\S+)", proc.stdout)[-1])
    return {
        "log": proc.stdout,
        "wheel": wheel,
        "ext": OUT / f"cmake-cp{PYTAG}" / f"_ext.cpython-{PYTAG}-darwin.so",
        "site": OUT / f"site-cp{PYTAG}",
        "installed": OUT / f"installed-cp{PYTAG}",
        "m": _helper(),
    }


def test_wheel_is_tagged_for_macos_arm64_and_holds_the_package_and_extension_only(built):
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    target = project["tool"]["cibuildwheel"]["macos"]["environment"]["MACOSX_DEPLOYMENT_TARGET"]
    tag = f"cp{PYTAG}-cp{PYTAG}-macosx_{target.replace('.', '_')}_arm64"
    dist = f"ncps-{project['project']['version']}"
    assert built["wheel"].name == f"{dist}-{tag}.whl"
    with zipfile.ZipFile(built["wheel"]) as zf:
        names = zf.namelist()
        assert f"Tag: {tag}" in zf.read(f"{dist}.dist-info/WHEEL").decode()
        binaries = [n for n in names if zf.read(n)[:4] in (b"\x7fELF", b"\xcf\xfa\xed\xfe", b"\xca\xfe\xba\xbe")]
    assert {n.split("/")[0] for n in names} == {"ncps", f"{dist}.dist-info"}, names
    assert "ncps/__init__.py" in names and "ncps/backends/gpu/kernels" in " ".join(names)
    # One binary, the Mach-O extension: no Linux build product (ELF, *-linux-gnu.so) came along.
    assert binaries == [f"ncps/_ext.cpython-{PYTAG}-darwin.so"], binaries
    assert not [n for n in names if re.search(r"linux|\.pyc$|__pycache__", n)], names


def test_extension_is_arm64_macos_loads_libmlx_by_rpath_as_mlx_does(built):
    m = built["m"]
    ext, core = m.MachOImage(built["ext"]), m.mlx_images(built["site"])[1]
    target = m.cibuildwheel_macos()["MACOSX_DEPLOYMENT_TARGET"]
    assert ext.cputype == 0x0100000C  # CPU_TYPE_ARM64
    assert ext.platform == 1 and m._key(ext.minos) <= m._key(target), (ext.platform, ext.minos)
    assert "_PyInit__ext" in ext.exports
    # MLX's own module: @rpath/libmlx.dylib found through @loader_path/lib from mlx/. Ours, from
    # ncps/, reaches the same mlx/lib folder of the installed mlx-metal wheel.
    assert "@rpath/libmlx.dylib" in core.libraries and core.rpaths == ["@loader_path/lib"]
    assert "@rpath/libmlx.dylib" in ext.libraries
    assert len(ext.rpaths) == 1, ext.rpaths
    installed = built["installed"]
    resolved = (installed / "ncps" / ext.rpaths[0].removeprefix("@loader_path/")).resolve()
    assert resolved == (installed / "mlx" / core.rpaths[0].removeprefix("@loader_path/")).resolve()
    assert (resolved / "libmlx.dylib").is_file()
    # The system libc++ (dynamically, as AppleClang links it), not a copy of zig's.
    assert m.LIBCXX in ext.libraries
    assert not [s for s in ext.exports if s.startswith("__ZNSt3__1")], "libc++ linked into the module"


def test_every_undefined_symbol_is_exported_by_libmlx_libcxx_or_libsystem(built):
    m = built["m"]
    ext = m.MachOImage(built["ext"])
    assert len(ext.imports) > 100  # the check below sees the real import table
    assert {lib for lib in ext.imports.values()} >= {"@rpath/libmlx.dylib", m.LIBCXX, m.LIBSYSTEM}
    assert m.problems(built["site"], built["ext"]) == []


def test_no_linux_only_symbol(built):
    ext = built["m"].MachOImage(built["ext"])
    linux = re.compile(r"GLIBC|glibc|__libc_|__errno_location|gnu_get_libc|_dl_|__cxa_thread_atexit_impl|sysconf_np")
    assert not [s for s in [*ext.imports, *ext.exports] if linux.search(s)]


def test_delocate_lists_only_mlx_and_system_libraries(built):
    env = {**os.environ, "PATH": f"{OUT / 'bin'}{os.pathsep}{os.environ['PATH']}"}  # the otool stand-in
    code = "import sys; from delocate.cmd.delocate_listdeps import main; sys.exit(main())"
    installed = built["installed"]
    proc = subprocess.run(
        [sys.executable, "-c", code, "--all", "--depending", str(installed)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    deps: dict[str, list[str]] = {}
    for line in proc.stdout.splitlines():
        if line.strip() and not line.startswith(" "):
            current = deps.setdefault(line.rstrip(":"), [])
        elif line.strip():
            current.append(line.strip())
    ext = str(installed / "ncps" / f"_ext.cpython-{PYTAG}-darwin.so")
    ours = {lib for lib, users in deps.items() if any(Path(u).resolve() == Path(ext).resolve() for u in users)}
    mlx = str((installed / "mlx" / "lib" / "libmlx.dylib").resolve())
    assert mlx in {str(Path(d).resolve()) for d in ours}, proc.stdout
    others = {d for d in ours if str(Path(d).resolve()) != mlx}
    assert others and all(d.startswith(("/usr/lib/", "/System/Library/")) for d in others), proc.stdout
