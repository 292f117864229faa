#!/usr/bin/env bash
# How good is the decision of `accelprobe compare`? Measured on this machine's CPU backend.
#
# Each trial runs `accelprobe bench --device cpu --profile quick` four times, in an order that
# rotates from trial to trial so that slow drifts of the machine hit every role alike:
#   A1, A2  the same build, nothing injected                      (A/A: any regression is false)
#   B5      ACCELPROBE_INJECT_SLOWDOWN=<kernel>:5.263  ->  5 % less throughput
#   B10     ACCELPROBE_INJECT_SLOWDOWN=<kernel>:11.11  -> 10 % less throughput
# and then compares A1 with A2, A1 with B5 and A1 with B10 (`compare --format json`,
# default --threshold 5% --confidence 0.95, --seed = trial number). It prints, per kernel
# metric, the false-positive rate (A/A called a regression) and the detection rates (A/B
# called a regression), with 95 % Wilson intervals.
#
# The slowdown is a busy-wait inside the timed region of each iteration, proportional to the
# time the kernel itself just took (see ACCELPROBE_INJECT_SLOWDOWN in docs/compare.md): a
# real, measured slowdown with the kernel's own noise, not an edit of the numbers.
#
# Usage: benches/compare-quality.sh [TRIALS]        (default 50)
#   BIN=path/to/accelprobe   (default: cargo build --release, target/release/accelprobe)
#   KERNELS=copy             (comma list for --kernel: copy, gemm (f32 only is slowed))
#   THRESHOLD=5%  CONFIDENCE=0.95  PROFILE=quick  KEEP=dir (keep the reports)
# Targets (issue 8): false positives <= 1 %, detection of a 10 % slowdown >= 95 %.
set -euo pipefail
cd "$(dirname "$0")/.."
TRIALS="${1:-${TRIALS:-50}}"
KERNELS="${KERNELS:-copy}"
THRESHOLD="${THRESHOLD:-5%}"
CONFIDENCE="${CONFIDENCE:-0.95}"
PROFILE="${PROFILE:-quick}"
if [ -z "${BIN:-}" ]; then
    cargo build --release --quiet
    BIN=target/release/accelprobe
fi
WORK="${KEEP:-$(mktemp -d)}"
mkdir -p "$WORK"
[ -n "${KEEP:-}" ] || trap 'rm -rf "$WORK"' EXIT

inject_for() { # percent -> ACCELPROBE_INJECT_SLOWDOWN value for every kernel in KERNELS
    local out="" k
    for k in ${KERNELS//,/ }; do out="${out:+$out,}$k:$1"; done
    echo "$out"
}
run_bench() { # role file
    local inject=""
    case "$1" in
        B5) inject="$(inject_for 5.263)" ;;
        B10) inject="$(inject_for 11.11)" ;;
    esac
    ACCELPROBE_INJECT_SLOWDOWN="$inject" "$BIN" bench --device cpu --kernel "$KERNELS" \
        --dtype f32 --profile "$PROFILE" --format json --no-cuda >"$2" 2>/dev/null
}
count() { grep -c "\"decision\": \"$1\"" "$2" || true; }

declare -A N=([AA]=0 [AB5]=0 [AB10]=0) REG=([AA]=0 [AB5]=0 [AB10]=0) IMP=([AA]=0 [AB5]=0 [AB10]=0)
ROLES=(A1 A2 B5 B10)
start=$(date +%s)
for t in $(seq 1 "$TRIALS"); do
    for i in 0 1 2 3; do
        role="${ROLES[$(((i + t) % 4))]}"
        run_bench "$role" "$WORK/$t-$role.json"
    done
    for pair in "AA A2" "AB5 B5" "AB10 B10"; do
        set -- $pair
        out="$WORK/$t-$1.cmp.json"
        "$BIN" compare "$WORK/$t-A1.json" "$WORK/$t-$2.json" --format json \
            --threshold "$THRESHOLD" --confidence "$CONFIDENCE" --seed "$t" >"$out" 2>/dev/null || true
        r=$(count regression "$out")
        u=$(count unchanged "$out")
        m=$(count improvement "$out")
        N[$1]=$((N[$1] + r + u + m))
        REG[$1]=$((REG[$1] + r))
        IMP[$1]=$((IMP[$1] + m))
    done
    printf '\rtrial %d/%d  A/A regressions %d/%d  5%%: %d/%d  10%%: %d/%d' "$t" "$TRIALS" \
        "${REG[AA]}" "${N[AA]}" "${REG[AB5]}" "${N[AB5]}" "${REG[AB10]}" "${N[AB10]}" >&2
done
echo >&2
elapsed=$(($(date +%s) - start))

wilson() { # k n -> "p% [lo%, hi%]"
    awk -v k="$1" -v n="$2" 'BEGIN {
        if (n == 0) { print "n/a"; exit }
        z = 1.96; p = k / n; d = 1 + z*z/n
        c = (p + z*z/(2*n)) / d; h = z * sqrt(p*(1-p)/n + z*z/(4*n*n)) / d
        lo = c - h; if (lo < 0) lo = 0; hi = c + h; if (hi > 1) hi = 1
        printf "%.1f%% [%.1f%%, %.1f%%]", 100*p, 100*lo, 100*hi }'
}
echo "accelprobe compare quality: $TRIALS trials, kernels $KERNELS, profile $PROFILE, threshold $THRESHOLD, confidence $CONFIDENCE ($elapsed s)"
echo "  CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores"
echo "  false positives (A/A called regression): ${REG[AA]}/${N[AA]} = $(wilson "${REG[AA]}" "${N[AA]}")   (A/A called improvement: ${IMP[AA]})"
echo "  detection of  5 % slowdown:              ${REG[AB5]}/${N[AB5]} = $(wilson "${REG[AB5]}" "${N[AB5]}")"
echo "  detection of 10 % slowdown:              ${REG[AB10]}/${N[AB10]} = $(wilson "${REG[AB10]}" "${N[AB10]}")"
echo "  targets: false positives <= 1 %, detection of 10 % >= 95 %"
