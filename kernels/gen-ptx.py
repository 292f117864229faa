#!/usr/bin/env python3
"""Generates kernels/ptx/<module>.ptx from kernels/*.cu with NVRTC 12.0 (python3 stdlib only).

    python3 kernels/gen-ptx.py            write kernels/ptx/ (commit the result)
    python3 kernels/gen-ptx.py --check    compile into a temporary directory and fail,
                                          naming the file, if a committed PTX is stale

Each module of kernels/manifest.json is compiled from its "source" with
--gpu-architecture=compute_<arch> (its minimum architecture), -default-device and
--std=c++17, without -lineinfo, so the output is byte-for-byte reproducible.
NVRTC warnings are errors. libnvrtc comes from the PyPI wheel
nvidia-cuda-nvrtc-cu12==12.0.140, installed on first use into $ACCELPROBE_CUDA_TOOLS
or <repo>/target/cuda-tools.
"""

import ctypes
import difflib
import sys
import tempfile
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _cudatools as ct  # noqa: E402


class Nvrtc:
    def __init__(self, libdir):
        path = libdir / "libnvrtc.so.12"
        try:
            self.lib = ctypes.CDLL(str(path))
        except OSError as e:
            raise ct.ToolError(f"cannot load {path}: {e}")
        L = self.lib
        L.nvrtcGetErrorString.restype = ctypes.c_char_p
        L.nvrtcGetErrorString.argtypes = [ctypes.c_int]
        L.nvrtcVersion.argtypes = [ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int)]
        L.nvrtcCreateProgram.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_char_p, ctypes.c_char_p,
                                         ctypes.c_int, ctypes.POINTER(ctypes.c_char_p),
                                         ctypes.POINTER(ctypes.c_char_p)]
        L.nvrtcCompileProgram.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_char_p)]
        L.nvrtcGetProgramLogSize.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t)]
        L.nvrtcGetProgramLog.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        L.nvrtcGetPTXSize.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t)]
        L.nvrtcGetPTX.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        L.nvrtcDestroyProgram.argtypes = [ctypes.POINTER(ctypes.c_void_p)]

    def version(self):
        major, minor = ctypes.c_int(), ctypes.c_int()
        self._ok(self.lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor)), "nvrtcVersion")
        return major.value, minor.value

    def _ok(self, rc, what):
        if rc != 0:
            raise ct.ToolError(f"{what} failed: {self.lib.nvrtcGetErrorString(rc).decode()}")

    def compile(self, source_text, name, options):
        prog = ctypes.c_void_p()
        self._ok(self.lib.nvrtcCreateProgram(ctypes.byref(prog), source_text.encode(), name.encode(), 0, None, None),
                 "nvrtcCreateProgram")
        try:
            opts = (ctypes.c_char_p * len(options))(*[o.encode() for o in options])
            rc = self.lib.nvrtcCompileProgram(prog, len(options), opts)
            size = ctypes.c_size_t()
            self._ok(self.lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size)), "nvrtcGetProgramLogSize")
            buf = ctypes.create_string_buffer(size.value)
            self._ok(self.lib.nvrtcGetProgramLog(prog, buf), "nvrtcGetProgramLog")
            log = buf.value.decode(errors="replace").strip()
            if rc != 0:
                raise ct.ToolError(f"NVRTC could not compile kernels/{name} ({' '.join(options)}):\n{log}")
            if log:
                raise ct.ToolError(f"NVRTC warnings for kernels/{name} (warnings are errors here):\n{log}")
            self._ok(self.lib.nvrtcGetPTXSize(prog, ctypes.byref(size)), "nvrtcGetPTXSize")
            buf = ctypes.create_string_buffer(size.value)
            self._ok(self.lib.nvrtcGetPTX(prog, buf), "nvrtcGetPTX")
            return buf.value  # bytes, without the trailing NUL
        finally:
            self.lib.nvrtcDestroyProgram(ctypes.byref(prog))


def options_for(module):
    return [f"--gpu-architecture=compute_{module['arch']}", "-default-device", "--std=c++17"]


def generate(nvrtc, modules, outdir):
    """Compiles every module into outdir; returns {module: bytes}. Checks targets and entry lists."""
    out = {}
    for name, m in modules.items():
        src = (ct.KERNELS_DIR / m["source"]).read_text(encoding="utf-8")
        ptx = nvrtc.compile(src, m["source"], options_for(m))
        text = ptx.decode()
        target = ct.ptx_directive(text, ".target")
        if target != f"sm_{m['arch']}":
            raise ct.ToolError(f"module {name}: PTX .target is {target}, expected sm_{m['arch']}")
        entries = sorted(ct.ptx_entries(text))
        if entries != sorted(m["kernels"]):
            raise ct.ToolError(f"module {name}: kernels/{m['source']} at compute_{m['arch']} defines kernels {entries}, "
                               f"but kernels/manifest.json lists {sorted(m['kernels'])}")
        (outdir / f"{name}.ptx").write_bytes(ptx)
        out[name] = ptx
    return out


def main(argv):
    check = "--check" in argv[1:]
    unknown = [a for a in argv[1:] if a != "--check"]
    if unknown:
        print(__doc__, file=sys.stderr)
        raise ct.ToolError(f"unknown argument(s): {' '.join(unknown)}")
    modules = ct.load_manifest()
    nvrtc = Nvrtc(ct.ensure_package("nvidia-cuda-nvrtc-cu12") / "nvidia" / "cuda_nvrtc" / "lib")
    major, minor = nvrtc.version()
    if (major, minor) != (12, 0):
        raise ct.ToolError(f"NVRTC {major}.{minor} loaded, expected 12.0")
    if not check:
        ct.PTX_DIR.mkdir(exist_ok=True)
        generate(nvrtc, modules, ct.PTX_DIR)
        stale = [p for p in ct.PTX_DIR.glob("*.ptx") if p.stem not in modules]
        for p in stale:
            p.unlink()
            ct.log(f"removed kernels/ptx/{p.name} (no module in kernels/manifest.json)")
        for name, m in modules.items():
            text = (ct.PTX_DIR / f"{name}.ptx").read_text(encoding="utf-8")
            ct.log(f"wrote kernels/ptx/{name}.ptx  from kernels/{m['source']}  compute_{m['arch']}  "
                   f"PTX ISA {ct.ptx_directive(text, '.version')}  kernels: {', '.join(ct.ptx_entries(text))}")
        return 0
    problems = ct.check_pairing(modules)
    with tempfile.TemporaryDirectory(prefix="accelprobe-ptx-") as tmp:
        fresh = generate(nvrtc, modules, Path(tmp))
    for name, m in modules.items():
        committed = ct.PTX_DIR / f"{name}.ptx"
        if not committed.is_file():
            continue  # reported by check_pairing
        old = committed.read_bytes()
        if old != fresh[name]:
            diff = list(difflib.unified_diff(old.decode(errors="replace").splitlines(),
                                             fresh[name].decode(errors="replace").splitlines(),
                                             f"kernels/ptx/{name}.ptx (committed)",
                                             f"kernels/ptx/{name}.ptx (from kernels/{m['source']} now)",
                                             lineterm="", n=1))
            shown = "\n".join(diff[:40]) + ("\n..." if len(diff) > 40 else "")
            problems.append(f"kernels/ptx/{name}.ptx is stale: it differs from what kernels/{m['source']} "
                            f"compiles to now (compute_{m['arch']}):\n{shown}")
        else:
            print(f"ok  kernels/ptx/{name}.ptx matches kernels/{m['source']} (compute_{m['arch']}, "
                  f"PTX ISA {ct.ptx_directive(old.decode(), '.version')})")
    if problems:
        raise ct.ToolError("\n".join(problems) + "\nRegenerate with: python3 kernels/gen-ptx.py (and commit kernels/ptx/)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except ct.ToolError as e:
        print(f"gen-ptx: error: {e}", file=sys.stderr)
        sys.exit(1)
