#!/usr/bin/env python3
"""Builds kernels/emu/emulate.cpp with g++ (AddressSanitizer + UBSan) and runs it (python3 stdlib only).

    python3 kernels/emu/run.py [--quick]

Two builds: EMU_CUDA_ARCH=800 (every kernel; the gemm_tc module's code path with cp.async
and m16n8k16/m16n8k8.tf32) and EMU_CUDA_ARCH=750 (the gemm_tc_sm75 module's hgemm_tc:
m16n8k8 f16, register-staged loads). Binaries go to <repo>/target/kernel-emu/. Exit status
0 only if every check passed. Needs g++ 12 or newer (C++20 <barrier>, _Float16).
"""

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

EMU_DIR = Path(__file__).resolve().parent
KERNELS_DIR = EMU_DIR.parent
OUT_DIR = KERNELS_DIR.parent / "target" / "kernel-emu"
FLAGS = ["-std=c++20", "-O1", "-g", "-Wall", "-Wextra", "-Werror", "-Wno-unknown-pragmas",
         "-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-pthread"]


def main(argv):
    quick = "--quick" in argv[1:]
    cxx = os.environ.get("CXX", "g++")
    if shutil.which(cxx) is None:
        print(f"emu: error: {cxx} not found; the kernel emulator needs g++ 12+ (Debian: apt-get install g++)",
              file=sys.stderr)
        return 1
    OUT_DIR.mkdir(parents=True, exist_ok=True)

    def build_and_run(arch):
        exe = OUT_DIR / f"emulate-sm{arch // 10}"
        cmd = [cxx] + FLAGS + [f"-DEMU_CUDA_ARCH={arch}", str(EMU_DIR / "emulate.cpp"), "-o", str(exe)]
        b = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if b.returncode != 0:
            return arch, False, f"build failed: {' '.join(cmd)}\n{b.stdout}"
        env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0:abort_on_error=1",
                   UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
        r = subprocess.run([str(exe)] + (["--quick"] if quick else []), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, env=env)
        return arch, r.returncode == 0, r.stdout + ("" if r.returncode == 0 else f"\n(exit status {r.returncode})")

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(build_and_run, [800, 750]))
    ok = True
    for arch, passed, out in results:
        print(f"== emulated __CUDA_ARCH__ {arch} ==")
        print(out.rstrip())
        ok = ok and passed
    print("emu: all kernels match the reference" if ok else "emu: FAILED", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
