#!/usr/bin/env bash
# accelprobe's CPU f32 GEMM against numpy on OpenBLAS, side by side in one run.
#
# For n in 1024, 2048, 4096 and 1 and 2 threads, alternates ROUNDS measurements of each
# (accelprobe bench, then numpy.matmul), takes the median TFLOP/s of each side and prints the
# ratio accelprobe / OpenBLAS. Target: >= 0.9 everywhere.
#
# numpy is installed into target/bench-venv on first use. OPENBLAS_CORETYPE and
# OPENBLAS_L2_SIZE (set on some machines to work around old OpenBLAS bugs) slow a current
# numpy, so they are unset for the numpy command only; the script prints which OpenBLAS
# kernel ran (threadpoolctl).
#
# Usage: benches/cpu-gemm-vs-openblas.sh [ROUNDS]   (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${1:-${ROUNDS:-3}}"
SIZES="${SIZES:-1024 2048 4096}"
THREADS="${THREADS:-1 2}"

cargo build --release --quiet
BIN=target/release/accelprobe
VENV=target/bench-venv
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet numpy threadpoolctl
fi
PY="$VENV/bin/python"

numpy_tflops() { # n threads -> median TFLOP/s of 5 timed matmuls after 2 warm-ups
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS="$2" "$PY" - "$1" <<'PY'
import sys, time, numpy as np
n = int(sys.argv[1])
rng = np.random.default_rng(1)
a = rng.uniform(-1, 1, (n, n)).astype(np.float32)
b = rng.uniform(-1, 1, (n, n)).astype(np.float32)
for _ in range(2):
    a @ b
times = []
for _ in range(5):
    t = time.perf_counter(); a @ b; times.append(time.perf_counter() - t)
times.sort()
print(2 * n**3 / times[len(times) // 2] / 1e12)
PY
}

accelprobe_tflops() { # n threads -> median TFLOP/s over 1.5 s of timed iterations
    RAYON_NUM_THREADS="$2" "$BIN" bench --device cpu --kernel gemm --dtype f32 --size "$1" \
        --duration 1500ms --format json --no-cuda 2>/dev/null |
        "$PY" -c 'import json,sys; b=json.load(sys.stdin)["benchmarks"][0]; assert b["correctness"]["passed"]; print(b["throughput"]["value"])'
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

echo "OpenBLAS as numpy runs it:"
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$PY" -c '
import numpy, threadpoolctl
for i in threadpoolctl.threadpool_info():
    if i.get("internal_api") == "openblas":
        print("  numpy", numpy.__version__, "OpenBLAS", i.get("version"), "kernel", i.get("architecture"))'
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) CPUs; rounds: $ROUNDS"
echo
printf '%6s %7s %16s %16s %8s\n' n threads "accelprobe TF/s" "OpenBLAS TF/s" ratio
worst=""
for n in $SIZES; do
    for t in $THREADS; do
        ours=(); theirs=()
        for _ in $(seq "$ROUNDS"); do
            ours+=("$(accelprobe_tflops "$n" "$t")")
            theirs+=("$(numpy_tflops "$n" "$t")")
        done
        o=$(printf '%s\n' "${ours[@]}" | median)
        b=$(printf '%s\n' "${theirs[@]}" | median)
        r=$(awk -v o="$o" -v b="$b" 'BEGIN {printf "%.3f", o / b}')
        printf '%6s %7s %16.4f %16.4f %8s\n' "$n" "$t" "$o" "$b" "$r"
        worst=$(printf '%s\n%s\n' "$worst" "$r" | grep -v '^$' | sort -g | head -1)
    done
done
echo
echo "lowest ratio: $worst (target >= 0.9)"
