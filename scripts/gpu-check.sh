#!/usr/bin/env bash
# GPU check: run on a machine with an NVIDIA GPU, python3 and PyTorch, and possibly no Rust.
#
# Build beforehand on an ordinary x86-64 machine (same glibc or older):
#     cargo build --release && cargo test --release --no-run --test gpu
# and carry target/release/accelprobe and target/release/deps/gpu-* along. The script:
#   1. prints `accelprobe report`;
#   2. runs the GPU integration tests (tests/gpu.rs, --ignored) against the release binary;
#   3. measures GEMM (own PTX kernel, cuBLAS, torch.matmul) for f32, tf32, f16, bf16 at 4096
#      and 8192, and device copy bandwidth (own kernel vs a PyTorch device copy);
#   4. prints one comparison table.
# Exit code: non-zero when a test or a correctness check failed.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN="${ACCELPROBE_BIN:-target/release/accelprobe}"
OUT="${OUT:-$(mktemp -d)}"
export ACCELPROBE_BIN="$(realpath "$BIN")"
status=0
# cuBLAS: use the system's if the loader finds it, else the one PyTorch's wheels ship.
if ! ldconfig -p 2>/dev/null | grep -q 'libcublas\.so'; then
    torch_cublas=$(python3 -c 'import nvidia.cublas, os; print(os.path.join(list(nvidia.cublas.__path__)[0], "lib"))' 2>/dev/null || true)
    if [ -n "$torch_cublas" ] && [ -d "$torch_cublas" ]; then
        export LD_LIBRARY_PATH="$torch_cublas${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        echo "cuBLAS from PyTorch's wheel: $torch_cublas"
    else
        echo "warning: no libcublas found; the cuBLAS column will be empty"
    fi
fi
export ACCELPROBE_KEEP_LD_LIBRARY_PATH=1

echo "== accelprobe report"
"$BIN" report || status=1

echo
echo "== GPU integration tests"
test_exe=$(ls -t target/release/deps/gpu-* target/debug/deps/gpu-* 2>/dev/null | grep -v '\.d$' | head -1 || true)
if [ -n "$test_exe" ]; then
    "$test_exe" --ignored --test-threads 1 || status=1
elif command -v cargo >/dev/null; then
    cargo test --release --test gpu -- --ignored --test-threads 1 || status=1
else
    echo "no GPU test executable found (build with: cargo test --release --no-run --test gpu)"; status=1
fi

echo
echo "== benchmarks"
for n in 4096 8192; do
    "$BIN" bench --device cuda:0 --kernel gemm --dtype f32,tf32,f16,bf16 --size "$n" \
        --duration 1s --format json > "$OUT/gemm-$n.json" || status=1
done
"$BIN" bench --device cuda:0 --kernel copy --size 2048 --duration 1s --format json > "$OUT/copy.json" || status=1

python3 - "$OUT" <<'PY' || status=1
import json, sys, glob
import torch

out = sys.argv[1]
dev = torch.device("cuda:0")

def timed(fn, iters=20):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record(); fn(); e.record(); torch.cuda.synchronize()
        times.append(s.elapsed_time(e) / 1e3)
    times.sort()
    return times[len(times) // 2]

def torch_gemm(n, dtype):
    torch.backends.cuda.matmul.allow_tf32 = dtype == "tf32"
    t = {"f32": torch.float32, "tf32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[dtype]
    a = torch.rand(n, n, device=dev, dtype=t) * 2 - 1
    b = torch.rand(n, n, device=dev, dtype=t) * 2 - 1
    return 2 * n**3 / timed(lambda: torch.matmul(a, b)) / 1e12

def torch_copy(mib):
    src = torch.empty(mib * 2**20, dtype=torch.uint8, device=dev).random_()
    dst = torch.empty_like(src)
    return 2 * src.numel() / timed(lambda: dst.copy_(src)) / 1e9

rows = []
for path in sorted(glob.glob(f"{out}/gemm-*.json")):
    r = json.load(open(path))
    for b in r["benchmarks"]:
        rows.append(b)
name = rows[0]["device_name"] if rows else "?"
print(f"GPU: {name}; torch {torch.__version__}, CUDA {torch.version.cuda}")
print(f"{'kernel':<8}{'dtype':<6}{'n':>6} {'own TF/s':>10} {'cuBLAS TF/s':>12} {'torch TF/s':>11} {'own/cuBLAS':>11} {'cuBLAS/torch':>13} {'own ok':>7}")
bad = False
for n in sorted({b["size"]["m"] for b in rows}):
    for dtype in ["f32", "tf32", "f16", "bf16"]:
        own = [b for b in rows if b["size"]["m"] == n and b["dtype"] == dtype and b["implementation"] == "accelprobe-ptx"]
        cub = [b for b in rows if b["size"]["m"] == n and b["dtype"] == dtype and b["implementation"] == "cublas"]
        o = own[0]["throughput"]["value"] if own else float("nan")
        c = cub[0]["throughput"]["value"] if cub else float("nan")
        ok = all(b["correctness"]["passed"] for b in own + cub)
        bad |= not ok
        t = torch_gemm(n, dtype)
        ratio = lambda x, y: f"{x / y:.2f}" if x > 0 and y > 0 and x == x and y == y else "-"
        print(f"{'gemm':<8}{dtype:<6}{n:>6} {o:>10.1f} {c:>12.1f} {t:>11.1f} {ratio(o, c):>11} {ratio(c, t):>13} {str(ok):>7}")
copy = json.load(open(f"{out}/copy.json"))["benchmarks"][0]
mib = copy["size"]["bytes"] // 2**20
tc = torch_copy(mib)
oc = copy["throughput"]["value"]
own_torch = f"{oc / tc:.2f}" if oc > 0 and tc > 0 else "-"
print(f"{'copy':<8}{'-':<6}{mib:>5}M {oc:>9.0f}GB/s {'':>12} {tc:>9.0f}GB/s {'':>11} {'own/torch ' + own_torch:>13} {str(copy['correctness']['passed']):>7}")
if not any(b["implementation"] == "cublas" for b in rows):
    print("warning: no cuBLAS measurement (libcublas not found)")
sys.exit(1 if bad or not copy["correctness"]["passed"] else 0)
PY
echo
echo "gpu-check: $([ $status -eq 0 ] && echo PASS || echo FAIL) (JSON in $OUT)"
exit $status
