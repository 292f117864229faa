"""Shared helpers for kernels/gen-ptx.py and kernels/check-ptxas.py (python3 stdlib only).

Installs the pinned CUDA tool wheels from PyPI into a cache directory and reads
kernels/manifest.json. NVRTC (which writes the PTX) and ptxas (which proves it
assembles) come from the same CUDA release, 12.0 update 1 (12.0.140): NVRTC 12.0
emits PTX ISA 8.0, which every driver from R525 (CUDA 12.0) on can JIT-compile.
Keep the two pins in lockstep; a newer NVRTC emits a newer ISA that older drivers
(and an older ptxas) reject.

Cache directory: $ACCELPROBE_CUDA_TOOLS, or <repo>/target/cuda-tools (git-ignored).
"""

import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

KERNELS_DIR = Path(__file__).resolve().parent
REPO_DIR = KERNELS_DIR.parent
PTX_DIR = KERNELS_DIR / "ptx"
MANIFEST = KERNELS_DIR / "manifest.json"

CUDA_TOOLS_VERSION = "12.0.140"

# name -> (sha256 of the manylinux1_x86_64 wheel on PyPI, file that must exist once installed)
PACKAGES = {
    "nvidia-cuda-nvrtc-cu12": (
        "8e94e991d85c422de4da87bdc7472fdc1364367bd4aace7000b559cd33122071",
        "nvidia/cuda_nvrtc/lib/libnvrtc.so.12",
    ),
    "nvidia-cuda-nvcc-cu12": (
        "958d54df87d0c0b7207e7fed403d6eeda0890a01cc44cfeaccf87c7f90e9b165",
        "nvidia/cuda_nvcc/bin/ptxas",
    ),
}


class ToolError(Exception):
    """An error with a message meant for a person (printed without a traceback)."""


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def cache_dir():
    env = os.environ.get("ACCELPROBE_CUDA_TOOLS")
    if env:
        return Path(env).resolve()
    return REPO_DIR / "target" / "cuda-tools"


def ensure_package(name):
    """Returns the install directory of the pinned wheel `name`, installing it if missing.

    pip download --no-deps (hash-checked) + pip install --no-deps --target, into a
    temporary directory renamed into place, under a lock so that concurrent test
    processes do not race.
    """
    sha256, marker = PACKAGES[name]
    root = cache_dir()
    dest = root / f"{name}-{CUDA_TOOLS_VERSION}"
    done = dest / ".accelprobe-installed"
    if done.is_file() and (dest / marker).exists():
        return dest
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ToolError(f"cannot create the CUDA tools cache {root}: {e} (set ACCELPROBE_CUDA_TOOLS to a writable directory)")
    with open(root / f".lock-{name}", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.is_file() and (dest / marker).exists():
            return dest
        log(f"installing {name}=={CUDA_TOOLS_VERSION} into {dest} (one-time download)")
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=root))
        try:
            req = tmp / "requirements.txt"
            req.write_text(f"{name}=={CUDA_TOOLS_VERSION} --hash=sha256:{sha256}\n")
            wheels = tmp / "wheels"
            run_pip(["download", "--no-deps", "--only-binary=:all:", "--require-hashes",
                     "--dest", str(wheels), "-r", str(req)], name)
            files = sorted(wheels.glob("*.whl"))
            if len(files) != 1:
                raise ToolError(f"pip download of {name}=={CUDA_TOOLS_VERSION} gave {len(files)} wheels in {wheels}, expected 1")
            site = tmp / "site"
            run_pip(["install", "--no-deps", "--no-index", "--no-compile", "--target", str(site), str(files[0])], name)
            if not (site / marker).exists():
                raise ToolError(f"the wheel {files[0].name} has no {marker}")
            (site / ".accelprobe-installed").write_text(f"{name}=={CUDA_TOOLS_VERSION} {files[0].name}\n")
            if dest.exists():
                shutil.rmtree(dest)
            os.rename(site, dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return dest


def run_pip(args, name):
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"] + args
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stdout)
        raise ToolError(
            f"pip failed (exit {p.returncode}) while installing {name}=={CUDA_TOOLS_VERSION}: {' '.join(cmd)}\n"
            "  This needs python3 with pip and access to PyPI; the wheel is manylinux x86_64 only. "
            "Output above.")


def load_manifest():
    """kernels/manifest.json: module name -> {source, arch, check, kernels}.

    source: the .cu file; arch: minimum compute capability x10, compiled as compute_<arch>;
    check: the sm_<n> ptxas must assemble it for; kernels: its entry points.
    """
    try:
        data = json.loads(MANIFEST.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ToolError(f"cannot read {MANIFEST}: {e}")
    modules = {}
    if not isinstance(data, dict):
        raise ToolError(f"{MANIFEST}: expected an object of modules")
    for name, m in data.items():
        if not isinstance(m, dict):
            raise ToolError(f"{MANIFEST}: module {name!r} is not an object")
        for key in ("source", "arch", "check", "kernels"):
            if key not in m:
                raise ToolError(f"{MANIFEST}: module {name!r} lacks {key!r}")
        if not (KERNELS_DIR / m["source"]).is_file():
            raise ToolError(f"{MANIFEST}: module {name!r}: source kernels/{m['source']} does not exist")
        if m["arch"] not in m["check"] or any(a < m["arch"] for a in m["check"]):
            raise ToolError(f"{MANIFEST}: module {name!r}: check list {m['check']} must include arch {m['arch']} and nothing below it")
        modules[name] = m
    return modules


def check_pairing(modules):
    """Every kernels/*.cu is the source of a module and every kernels/ptx/*.ptx is a module's output."""
    problems = []
    sources = {m["source"] for m in modules.values()}
    for cu in sorted(KERNELS_DIR.glob("*.cu")):
        if cu.name not in sources:
            problems.append(f"kernels/{cu.name} is in no module of kernels/manifest.json (so it has no committed PTX)")
    for ptx in sorted(PTX_DIR.glob("*.ptx")):
        if ptx.stem not in modules:
            problems.append(f"kernels/ptx/{ptx.name} belongs to no module of kernels/manifest.json (no .cu generates it)")
    for name in modules:
        if not (PTX_DIR / f"{name}.ptx").is_file():
            problems.append(f"kernels/ptx/{name}.ptx is missing (run python3 kernels/gen-ptx.py)")
    return problems


def ptx_entries(text):
    """Names of the .entry functions of a PTX text."""
    out = []
    for line in text.splitlines():
        s = line.strip()
        if s.startswith(".visible .entry ") or s.startswith(".entry "):
            out.append(s.split(".entry ", 1)[1].split("(", 1)[0].strip())
    return out


def ptx_directive(text, directive):
    for line in text.splitlines():
        s = line.strip()
        if s.startswith(directive + " "):
            return s.split(None, 1)[1].strip()
    return None
