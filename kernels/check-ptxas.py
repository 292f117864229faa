#!/usr/bin/env python3
"""Proves that every committed PTX assembles for every architecture it claims (python3 stdlib only).

    python3 kernels/check-ptxas.py

For each module of kernels/manifest.json and each sm_<n> in its "check" list, runs
    ptxas -arch=sm_<n> -v --warn-on-spills --warn-on-local-memory-usage
          --warn-on-double-precision-use --warning-as-error kernels/ptx/<module>.ptx
and prints registers, shared memory, stack and spills per kernel. Fails on any ptxas error
or warning (so on any spill or local-memory use), on a .cu without a committed PTX or a
PTX without a .cu, on a .target other than the manifest's minimum architecture, on entry
points other than the manifest's, and on a PTX ISA newer than 8.0 (the newest that R525 /
CUDA 12.0 drivers load). ptxas comes from the PyPI wheel nvidia-cuda-nvcc-cu12==12.0.140
(the same CUDA release as the NVRTC that gen-ptx.py uses), installed on first use into
$ACCELPROBE_CUDA_TOOLS or <repo>/target/cuda-tools. It does not check freshness against the
.cu sources: that is `python3 kernels/gen-ptx.py --check`.
"""

import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _cudatools as ct  # noqa: E402

MAX_PTX_ISA = (8, 0)  # CUDA 12.0 = driver R525: the oldest driver accelprobe supports

FLAGS = ["-v", "--warn-on-spills", "--warn-on-local-memory-usage", "--warn-on-double-precision-use",
         "--warning-as-error"]


def parse_ptxas(output):
    """ptxas -v output -> {kernel: {regs, smem, stack, spill_st, spill_ld}}."""
    info = {}
    current = None
    for line in output.splitlines():
        m = re.search(r"Compiling entry function '([^']+)'", line)
        if m:
            current = info.setdefault(m.group(1), {})
            continue
        if current is None:
            continue
        m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m:
            current.update(stack=int(m.group(1)), spill_st=int(m.group(2)), spill_ld=int(m.group(3)))
        m = re.search(r"Used (\d+) registers", line)
        if m:
            current["regs"] = int(m.group(1))
            s = re.search(r"(\d+) bytes smem", line)
            current["smem"] = int(s.group(1)) if s else 0
    return info


def main(argv):
    if len(argv) > 1:
        print(__doc__, file=sys.stderr)
        raise ct.ToolError(f"unknown argument(s): {' '.join(argv[1:])}")
    modules = ct.load_manifest()
    problems = ct.check_pairing(modules)
    ptxas = ct.ensure_package("nvidia-cuda-nvcc-cu12") / "nvidia" / "cuda_nvcc" / "bin" / "ptxas"
    if not os.access(ptxas, os.X_OK):
        try:
            os.chmod(ptxas, 0o755)
        except OSError as e:
            raise ct.ToolError(f"{ptxas} is not executable and cannot be made so: {e}")
    v = subprocess.run([str(ptxas), "--version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if v.returncode != 0 or "release 12.0," not in v.stdout:
        raise ct.ToolError(f"{ptxas} --version failed or is not CUDA 12.0:\n{v.stdout}")
    print(f"ptxas: {v.stdout.strip().splitlines()[-1]}")

    jobs = []
    for name, m in modules.items():
        path = ct.PTX_DIR / f"{name}.ptx"
        if not path.is_file():
            continue  # reported by check_pairing
        text = path.read_text(encoding="utf-8")
        version = ct.ptx_directive(text, ".version")
        try:
            isa = tuple(int(x) for x in version.split("."))
        except (AttributeError, ValueError):
            problems.append(f"kernels/ptx/{name}.ptx has no readable .version line")
            continue
        if isa > MAX_PTX_ISA:
            problems.append(f"kernels/ptx/{name}.ptx is PTX ISA {version}, newer than {MAX_PTX_ISA[0]}.{MAX_PTX_ISA[1]}: "
                            "drivers older than its CUDA release cannot load it")
        target = ct.ptx_directive(text, ".target")
        if target != f"sm_{m['arch']}":
            problems.append(f"kernels/ptx/{name}.ptx targets {target}, but kernels/manifest.json says arch {m['arch']}")
        entries = sorted(ct.ptx_entries(text))
        if entries != sorted(m["kernels"]):
            problems.append(f"kernels/ptx/{name}.ptx defines {entries}, kernels/manifest.json lists {sorted(m['kernels'])}")
        for arch in m["check"]:
            jobs.append((name, arch, path, sorted(m["kernels"])))

    with tempfile.TemporaryDirectory(prefix="accelprobe-ptxas-") as tmp:
        def run(job):
            name, arch, path, _ = job
            cubin = Path(tmp) / f"{name}.sm_{arch}.cubin"
            cmd = [str(ptxas), f"-arch=sm_{arch}"] + FLAGS + ["-o", str(cubin), str(path)]
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            return job, cmd, p

        with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as pool:
            results = list(pool.map(run, jobs))

    rows = []
    for (name, arch, path, kernels), cmd, p in results:
        if p.returncode != 0:
            problems.append(f"ptxas failed for kernels/ptx/{name}.ptx at sm_{arch} (exit {p.returncode}): "
                            f"{' '.join(cmd)}\n{p.stdout.strip()}")
            continue
        info = parse_ptxas(p.stdout)
        if sorted(info) != kernels:
            problems.append(f"ptxas at sm_{arch} compiled {sorted(info)} from kernels/ptx/{name}.ptx, expected {kernels}:\n"
                            f"{p.stdout.strip()}")
        for k in sorted(info):
            d = info[k]
            if "regs" not in d or "spill_st" not in d:
                problems.append(f"could not read ptxas -v output for {k} at sm_{arch}:\n{p.stdout.strip()}")
                continue
            if d["spill_st"] or d["spill_ld"] or d["stack"]:
                problems.append(f"{k} (kernels/ptx/{name}.ptx) at sm_{arch}: {d['stack']} bytes stack, "
                                f"{d['spill_st']}/{d['spill_ld']} bytes spill stores/loads")
            rows.append((name, k, f"sm_{arch}", d["regs"], d["smem"], d["stack"], f"{d['spill_st']}/{d['spill_ld']}"))

    head = ("module", "kernel", "arch", "regs", "smem", "stack", "spill st/ld")
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    for r in [head] + rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
    if problems:
        raise ct.ToolError("\n".join(problems))
    print(f"ok  {len(results)} ptxas runs: {len(modules)} modules, every kernel assembles for every listed "
          "architecture with no spills")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except ct.ToolError as e:
        print(f"check-ptxas: error: {e}", file=sys.stderr)
        sys.exit(1)
