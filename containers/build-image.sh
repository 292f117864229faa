#!/usr/bin/env bash
# Daemonless build and check of the accelprobe image (CI runs this; no Docker daemon, no
# registry, no base image download).
#
#   containers/build-image.sh [--binary PATH] [--out DIR] [--keep] [--runs N]
#                             [--fake-nvml PATH] [--fake-cuda PATH] [--fixture PATH]
#
# Builds FROM scratch with buildah (vfs storage and chroot isolation under a temporary
# directory) the image containers/Dockerfile describes: the accelprobe binary at
# /usr/local/bin/accelprobe, exactly the glibc libraries it and the NVIDIA driver libraries
# need (taken from this Debian host, at their real paths, with the /lib and /lib64 links),
# /etc/passwd and /etc/group with the user nonroot (65532), /home/nonroot, /tmp, the CA bundle,
# and every instruction of the Dockerfile's final stage except COPY (user, working directory,
# environment, entrypoint, command, labels). Exports OUT/accelprobe.oci.tar (OCI archive).
#
# Then checks the archive: unpacks its rootfs (index.json -> manifest -> layers, in order),
# injects the fake NVML (and CUDA) library where the NVIDIA container toolkit puts the real
# ones, and runs the image's entrypoint inside it as the image's user, in its own mount and
# PID namespaces with /proc, a minimal /dev and a read-only /sys: `report` must show the
# fixture's GPUs, and `run --no-bench --termination-log /tmp/term` must print one JSON line
# with a verdict and write the termination message. Prints the image size, the archive and
# rootfs bytes, and the median time from container start to verdict.
#
# Needs root (buildah's storage and the chroot). Installs buildah and binutils with apt-get
# when they are missing. Removes everything it created, unless --keep.
#
# Options:
#   --binary PATH     accelprobe binary (default target/release/accelprobe); a copy with debug
#                     information or symbols is stripped first
#   --out DIR         where accelprobe.oci.tar goes (default target/image)
#   --keep            keep the work directory, buildah's storage and what buildah created
#   --runs N          timed `run --no-bench` runs (default 5)
#   --fake-nvml PATH  fake libnvidia-ml.so.1 for the check (default: built with cargo from
#                     tests/fake-nvml into target/fakes)
#   --fake-cuda PATH  fake libcuda.so.1 for the check (default: built like the fake NVML;
#                     `none` leaves the CUDA driver out)
#   --fixture PATH    report the fakes serve (default tests/fixtures/nvml/seed-l40s.json)

set -eEuo pipefail
umask 022

PROG=build-image.sh
die() {
    echo "$PROG: $*" >&2
    exit 1
}
trap 'rc=$?; echo "$PROG: failed (exit $rc) at line $LINENO: $BASH_COMMAND" >&2; exit $rc' ERR

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DOCKERFILE=$REPO/containers/Dockerfile
IMAGE_FILES=$REPO/containers/image

BINARY=$REPO/target/release/accelprobe
OUT=$REPO/target/image
KEEP=0
RUNS=5
FAKE_NVML=
FAKE_CUDA=
FIXTURE=$REPO/tests/fixtures/nvml/seed-l40s.json

while (($#)); do
    case $1 in
    --binary) BINARY=${2:?--binary needs a path}; shift 2 ;;
    --out) OUT=${2:?--out needs a directory}; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --runs) RUNS=${2:?--runs needs a number}; shift 2 ;;
    --fake-nvml) FAKE_NVML=${2:?--fake-nvml needs a path}; shift 2 ;;
    --fake-cuda) FAKE_CUDA=${2:?--fake-cuda needs a path}; shift 2 ;;
    --fixture) FIXTURE=${2:?--fixture needs a path}; shift 2 ;;
    -h | --help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
    esac
done
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive number, not '$RUNS'"
[[ -f $BINARY ]] || die "no binary at $BINARY (build it: cargo build --release)"
[[ -f $FIXTURE ]] || die "no fixture at $FIXTURE"
[[ -f $DOCKERFILE ]] || die "no $DOCKERFILE"

# --- privileges and tools ---------------------------------------------------------------

if [[ $(id -u) != 0 ]]; then
    if ! command -v buildah >/dev/null; then
        die "buildah is not installed and installing it needs root: run as root (CI does), or apt-get install buildah and run as root"
    fi
    die "must run as root: buildah's vfs storage and the chroot check need it (CI runs as root)"
fi

# One build at a time on this machine: apt-get and the directories buildah creates outside
# its storage are shared. The lock is held on this script itself, so no lock file is left behind.
exec 9<"${BASH_SOURCE[0]}"
if command -v flock >/dev/null; then
    flock -w 900 9 || die "another build-image.sh has held the lock for 15 minutes"
fi

missing=()
command -v buildah >/dev/null || missing+=(buildah)
{ command -v strip && command -v readelf; } >/dev/null || missing+=(binutils)
command -v ldd >/dev/null || missing+=(libc-bin)
if ((${#missing[@]})); then
    command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them"
    echo "installing ${missing[*]} with apt-get" >&2
    apt_log=$(mktemp)
    if ! { DEBIAN_FRONTEND=noninteractive apt-get update -q &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"; } \
        >"$apt_log" 2>&1; then
        tail -n 20 "$apt_log" >&2
        rm -f "$apt_log"
        die "apt-get install ${missing[*]} failed"
    fi
    rm -f "$apt_log"
fi
for tool in buildah strip readelf ldd tar sha256sum unshare mount realpath; do
    command -v "$tool" >/dev/null || die "$tool is not available"
done

case $(uname -m) in
x86_64) MULTIARCH=x86_64-linux-gnu ;;
aarch64) MULTIARCH=aarch64-linux-gnu ;;
*) die "unsupported architecture $(uname -m) (x86_64 and aarch64 only)" ;;
esac
LIBDIR=/usr/lib/$MULTIARCH # where the NVIDIA container toolkit injects the driver libraries

# The fakes the check injects, built the way the tests build them unless given.
if [[ -z $FAKE_NVML || -z $FAKE_CUDA ]]; then
    fakes_target=$REPO/target/fakes
    if command -v cargo >/dev/null; then
        (cd "$REPO" && cargo build --quiet --release -p accelprobe-fake-nvml -p accelprobe-fake-cuda \
            --target-dir "$fakes_target") || die "building the fake NVML and CUDA libraries with cargo failed"
    fi
    : "${FAKE_NVML:=$fakes_target/release/libnvidia_ml.so}"
    : "${FAKE_CUDA:=$fakes_target/release/libcuda.so}"
fi
[[ -f $FAKE_NVML ]] || die "no fake NVML library at $FAKE_NVML"
[[ $FAKE_CUDA == none || -f $FAKE_CUDA ]] || die "no fake CUDA library at $FAKE_CUDA"

# --- work directory and cleanup --------------------------------------------------------

WORK=$(mktemp -d "${TMPDIR:-/tmp}/accelprobe-image.XXXXXX")
STORAGE=(--root "$WORK/storage" --runroot "$WORK/runroot" --storage-driver vfs)
# Directories buildah creates even with --root/--runroot; removed afterwards when they did not
# exist before (outermost first, so a created parent takes its children with it).
SHARED_DIRS=(/var/lib/containers /var/lib/containers/cache /run/containers)
created_before=()
for d in "${SHARED_DIRS[@]}"; do
    [[ -e $d ]] && created_before+=("$d")
done

cleanup() {
    local rc=$?
    trap - ERR
    set +e
    if ((KEEP)); then
        echo "kept: $WORK (buildah ${STORAGE[*]})" >&2
        return "$rc"
    fi
    buildah "${STORAGE[@]}" rm --all >/dev/null 2>&1
    buildah "${STORAGE[@]}" rmi --all --force >/dev/null 2>&1
    rm -rf "$WORK"
    local d before
    for d in "${SHARED_DIRS[@]}"; do
        for before in "${created_before[@]}"; do
            [[ $before == "$d" ]] && continue 2
        done
        rm -rf "$d"
    done
    return "$rc"
}
trap cleanup EXIT
mkdir -p "$WORK/tmp" "$WORK/ctx" "$WORK/rootfs"
export TMPDIR=$WORK/tmp BUILDAH_ISOLATION=chroot
# No pull ever happens (FROM scratch); the push to an archive still consults a policy.
printf '{"default":[{"type":"insecureAcceptAnything"}]}\n' >"$WORK/policy.json"

# --- the root filesystem ---------------------------------------------------------------

ROOTFS=$WORK/rootfs

# Copy the host file $1 to the same path under $ROOTFS, recreating every symbolic link met on
# the way (/lib -> usr/lib, /lib64/ld-linux-x86-64.so.2 -> ...), so the image has the host's
# layout and the loader finds each library where ldd did.
copy_host_path() {
    local path=$1 depth=${2:-0} prefix="" i j comps target abs rest
    ((depth < 16)) || die "too many symbolic links resolving $1"
    IFS=/ read -ra comps <<<"${path#/}"
    for ((i = 0; i < ${#comps[@]}; i++)); do
        local cur=$prefix/${comps[i]}
        if [[ -L $cur ]]; then
            target=$(readlink "$cur")
            if [[ -L $ROOTFS$cur ]]; then
                [[ $(readlink "$ROOTFS$cur") == "$target" ]] || die "$cur: conflicting links in the image"
            elif [[ -e $ROOTFS$cur ]]; then
                die "$cur is a link on this host but not in the image"
            else
                mkdir -p "$ROOTFS$prefix"
                ln -s "$target" "$ROOTFS$cur"
            fi
            [[ $target == /* ]] && abs=$target || abs=$prefix/$target
            rest=
            for ((j = i + 1; j < ${#comps[@]}; j++)); do rest+=/${comps[j]}; done
            copy_host_path "$(realpath -ms "$abs")$rest" $((depth + 1))
            return
        fi
        prefix=$cur
    done
    [[ -f $path ]] || die "$path is not a regular file"
    mkdir -p "$ROOTFS$(dirname "$path")"
    [[ -e $ROOTFS$path ]] || cp -p "$path" "$ROOTFS$path"
}

# The binary: a glibc (dynamically linked) executable; debug information and symbols stripped.
readelf -h "$BINARY" 2>/dev/null | grep -q 'Type:[[:space:]]*\(EXEC\|DYN\)' ||
    die "$BINARY is not an ELF executable"
readelf -lW "$BINARY" | grep -q 'Requesting program interpreter' ||
    die "$BINARY is statically linked: it cannot dlopen the NVIDIA libraries (build for *-linux-gnu)"
mkdir -p "$ROOTFS/usr/local/bin"
if readelf -SW "$BINARY" | grep -q '\.debug_\|\.symtab'; then
    strip --strip-all -o "$ROOTFS/usr/local/bin/accelprobe" "$BINARY"
    binary_note="stripped copy of $(stat -c %s "$BINARY") bytes"
else
    cp "$BINARY" "$ROOTFS/usr/local/bin/accelprobe"
    binary_note="as given"
fi
chmod 0755 "$ROOTFS/usr/local/bin/accelprobe"

# Its libraries, from ldd: "name => /path (addr)" lines and the loader's own "/path (addr)".
ldd_out=$(ldd "$BINARY") || die "ldd $BINARY failed"
libs=()
while read -r first arrow path _; do
    if [[ $arrow == "=>" ]]; then
        [[ $path == /* ]] || die "ldd: $first not found for $BINARY"
        libs+=("$path")
    elif [[ $first == /* ]]; then
        libs+=("$first")
    fi
done <<<"$ldd_out"
((${#libs[@]})) || die "ldd found no libraries for $BINARY"
libc_dir=
for lib in "${libs[@]}"; do
    [[ $(basename "$lib") == libc.so.6 ]] && libc_dir=$(dirname "$lib")
done
[[ -n $libc_dir ]] || die "$BINARY does not link libc.so.6"
# The NVIDIA driver libraries the toolkit injects are linked against these glibc libraries as
# well (libnvidia-ml.so.1 and libcuda.so.1 list libdl, libpthread, librt and libm as NEEDED;
# glibc 2.34+ keeps the first three as small stubs). A dlopen() of the real driver fails
# without them, although accelprobe itself does not need them. distroless cc has them too.
for name in libm.so.6 libdl.so.2 libpthread.so.0 librt.so.1; do
    [[ -e $libc_dir/$name ]] || die "$libc_dir/$name is missing on this host"
    libs+=("$libc_dir/$name")
done
for lib in "${libs[@]}"; do
    copy_host_path "$lib"
done

# /etc: the users and groups of distroless' nonroot variant, the loader configuration the
# toolkit's ldconfig hook extends, and the CA bundle.
install -d -m 0755 "$ROOTFS/etc/ld.so.conf.d" "$ROOTFS/etc/ssl/certs" "$ROOTFS$LIBDIR"
install -m 0644 "$IMAGE_FILES/passwd" "$IMAGE_FILES/group" "$IMAGE_FILES/ld.so.conf" "$ROOTFS/etc/"
printf '# Multiarch support\n/usr/local/lib/%s\n/lib/%s\n/usr/lib/%s\n' \
    "$MULTIARCH" "$MULTIARCH" "$MULTIARCH" >"$ROOTFS/etc/ld.so.conf.d/$MULTIARCH.conf"
if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
    install -m 0644 /etc/ssl/certs/ca-certificates.crt "$ROOTFS/etc/ssl/certs/"
else
    echo "$PROG: warning: no /etc/ssl/certs/ca-certificates.crt on this host; the image has no CA bundle" >&2
fi
install -d -m 1777 "$ROOTFS/tmp"
install -d -m 0700 -o 65532 -g 65532 "$ROOTFS/home/nonroot"

# One layer, from a tar with numeric owners, sorted names and fixed times (reproducible).
tar --create --file "$WORK/ctx/rootfs.tar" --numeric-owner --sort=name \
    --mtime="@${SOURCE_DATE_EPOCH:-0}" --directory "$ROOTFS" .

# --- the image configuration: the Dockerfile's final stage ------------------------------

# Instructions of the last stage, continuation lines joined, comments dropped.
final_stage=$(awk '
    /^[[:space:]]*#/ { next }
    { line = cont ? line " " $0 : $0 }
    /\\[[:space:]]*$/ { sub(/\\[[:space:]]*$/, "", line); cont = 1; next }
    { cont = 0 }
    line ~ /^[[:space:]]*$/ { next }
    toupper(line) ~ /^[[:space:]]*FROM[[:space:]]/ { n = 0; next }
    { stage[++n] = line }
    END { for (i = 1; i <= n; i++) print stage[i] }' "$DOCKERFILE")
[[ -n $final_stage ]] || die "no final stage in $DOCKERFILE"
{
    echo "FROM scratch"
    echo "ADD rootfs.tar /"
    while IFS= read -r line; do
        keyword=$(awk '{ print toupper($1) }' <<<"$line")
        case $keyword in
        COPY)
            # The rootfs provides what the Dockerfile copies: check that it does.
            dest=$(awk '{ print $NF }' <<<"$line")
            [[ -e $ROOTFS$dest ]] || die "the Dockerfile copies to $dest, which this build does not provide"
            ;;
        RUN | ADD) die "the Dockerfile's final stage has $keyword, which the daemonless build cannot reproduce" ;;
        *) echo "$line" ;;
        esac
    done <<<"$final_stage"
} >"$WORK/ctx/Containerfile"

VERSION=$(sed -n 's/^version[[:space:]]*=[[:space:]]*"\(.*\)"/\1/p' "$REPO/Cargo.toml" | head -n 1)
REVISION=$(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo unknown)
if [[ $REVISION != unknown ]] && ! git -C "$REPO" diff --quiet HEAD 2>/dev/null; then
    REVISION+=-dirty
fi
CREATED=$(date -u ${SOURCE_DATE_EPOCH:+-d "@$SOURCE_DATE_EPOCH"} +%Y-%m-%dT%H:%M:%SZ)
TAG=localhost/accelprobe:${VERSION:-dev}

# --- build and export ------------------------------------------------------------------

buildah "${STORAGE[@]}" bud --quiet --isolation chroot --signature-policy "$WORK/policy.json" \
    --build-arg "VERSION=$VERSION" --build-arg "REVISION=$REVISION" --build-arg "CREATED=$CREATED" \
    -t "$TAG" -f "$WORK/ctx/Containerfile" "$WORK/ctx" >"$WORK/bud.log" 2>&1 ||
    { tail -n 20 "$WORK/bud.log" >&2; die "buildah bud failed"; }
mkdir -p "$OUT"
ARCHIVE=$(realpath -m "$OUT/accelprobe.oci.tar")
[[ $ARCHIVE != *:* ]] || die "the output path $ARCHIVE must not contain ':' (oci-archive:PATH:TAG)"
rm -f "$ARCHIVE"
buildah "${STORAGE[@]}" push --quiet --signature-policy "$WORK/policy.json" \
    "$TAG" "oci-archive:$ARCHIVE:${VERSION:-dev}" >"$WORK/push.log" 2>&1 ||
    { tail -n 20 "$WORK/push.log" >&2; die "buildah push to $ARCHIVE failed"; }
IMAGE_SIZE=$(buildah "${STORAGE[@]}" images --format '{{.Size}}' "$TAG")
ARCHIVE_BYTES=$(stat -c %s "$ARCHIVE")

# --- unpack the archive as a runtime would ---------------------------------------------

OCI=$WORK/oci
CHECK_ROOT=$WORK/check-rootfs
mkdir -p "$OCI" "$CHECK_ROOT"
tar -xf "$ARCHIVE" -C "$OCI"
[[ -f $OCI/index.json ]] || die "the archive has no index.json"

# blob DIGEST: BLOB is the blob's path, after checking its sha256.
blob() {
    local digest=$1
    [[ $digest =~ ^sha256:[0-9a-f]{64}$ ]] || die "bad digest '$digest'"
    BLOB=$OCI/blobs/sha256/${digest#sha256:}
    [[ -f $BLOB ]] || die "blob $digest is missing from the archive"
    [[ $(sha256sum <"$BLOB" | cut -d' ' -f1) == "${digest#sha256:}" ]] || die "blob $digest does not match its digest"
}
digests() { grep -o '"digest"[[:space:]]*:[[:space:]]*"sha256:[0-9a-f]*"' | grep -o 'sha256:[0-9a-f]*'; }

index=$(tr -d '\n' <"$OCI/index.json")
manifest_digest=$(digests <<<"$index" | head -n 1) || die "index.json names no manifest"
blob "$manifest_digest"
manifest=$(tr -d '\n' <"$BLOB")
grep -q '"application/vnd.oci.image.manifest.v1+json"' <<<"$manifest" ||
    grep -q '"application/vnd.oci.image.manifest.v1+json"' <<<"$index" ||
    die "index.json does not point at an OCI image manifest"
config_digest=$(sed -n 's/.*"config"[[:space:]]*:[[:space:]]*{[^}]*"digest"[[:space:]]*:[[:space:]]*"\(sha256:[0-9a-f]*\)".*/\1/p' <<<"$manifest")
mapfile -t layers < <(digests <<<"${manifest#*\"layers\"}")
((${#layers[@]})) || die "the manifest lists no layers"
blob "$config_digest"
config=$(tr -d '\n' <"$BLOB")

# Layers in order, whiteouts applied (.wh.NAME deletes NAME, .wh..wh..opq empties the directory).
for layer in "${layers[@]}"; do
    blob "$layer"
    file=$BLOB
    while IFS= read -r entry; do
        entry=${entry#./}
        base=$(basename "$entry")
        dir=$(dirname "$entry")
        [[ $base == .wh.* ]] || continue
        if [[ $base == .wh..wh..opq ]]; then
            find "$CHECK_ROOT/$dir" -mindepth 1 -delete
        else
            rm -rf "${CHECK_ROOT:?}/$dir/${base#.wh.}"
        fi
    done < <(tar -tf "$file")
    tar -xf "$file" -C "$CHECK_ROOT" --numeric-owner --same-owner --same-permissions --exclude='.wh.*'
done
ROOTFS_BYTES=$(du -sb "$CHECK_ROOT" | cut -f1)
ROOTFS_FILES=$(find "$CHECK_ROOT" -type f | wc -l)

# --- check the configuration against the Dockerfile ------------------------------------

# "Key":value of the config's container configuration (a string or an array of strings).
config_value() {
    grep -o "\"$1\"[[:space:]]*:[[:space:]]*\(\"[^\"]*\"\|\[[^]]*\]\)" <<<"$config" | head -n 1 |
        sed "s/^\"$1\"[[:space:]]*:[[:space:]]*//"
}
dockerfile_value() { grep -i "^[[:space:]]*$1[[:space:]]" <<<"$final_stage" | tail -n 1 | sed "s/^[[:space:]]*[A-Za-z]*[[:space:]]*//"; }
nospace() { tr -d '[:space:]'; }

cfg_user=$(config_value User | tr -d '"')
cfg_entrypoint=$(config_value Entrypoint)
cfg_cmd=$(config_value Cmd)
cfg_workdir=$(config_value WorkingDir | tr -d '"')
[[ $cfg_user == "$(dockerfile_value USER)" ]] || die "image user '$cfg_user' is not the Dockerfile's '$(dockerfile_value USER)'"
[[ $cfg_user =~ ^([0-9]+):([0-9]+)$ ]] || die "image user '$cfg_user' is not numeric uid:gid"
RUN_UID=${BASH_REMATCH[1]} RUN_GID=${BASH_REMATCH[2]}
((RUN_UID != 0)) || die "the image runs as root"
[[ $(nospace <<<"$cfg_entrypoint") == "$(dockerfile_value ENTRYPOINT | nospace)" ]] ||
    die "image entrypoint $cfg_entrypoint is not the Dockerfile's $(dockerfile_value ENTRYPOINT)"
[[ $(nospace <<<"$cfg_cmd") == "$(dockerfile_value CMD | nospace)" ]] ||
    die "image command $cfg_cmd is not the Dockerfile's $(dockerfile_value CMD)"
[[ $cfg_workdir == "$(dockerfile_value WORKDIR)" ]] || die "image working directory '$cfg_workdir' is not the Dockerfile's"
grep -q "\"org.opencontainers.image.version\":\"$VERSION\"" <<<"$config" || die "the image has no version label $VERSION"
grep -q '"org.opencontainers.image.title":"accelprobe"' <<<"$config" || die "the image has no title label"
mapfile -t ENTRYPOINT < <(sed 's/^\[//; s/\]$//; s/","/"\n"/g' <<<"$cfg_entrypoint" | sed 's/^"//; s/"$//')
mapfile -t IMAGE_ENV < <(config_value Env | sed 's/^\[//; s/\]$//; s/","/"\n"/g' | sed 's/^"//; s/"$//')
[[ ${ENTRYPOINT[0]:-} == /* && -x $CHECK_ROOT${ENTRYPOINT[0]} ]] || die "the entrypoint ${ENTRYPOINT[0]:-} is not an executable in the image"

# Nothing CUDA or NVIDIA in the image: the toolkit brings the driver's libraries.
cuda_files=$(find "$CHECK_ROOT" \( -name 'libcuda*' -o -name 'libnvidia*' -o -name 'libcudart*' \
    -o -name 'libcublas*' -o -name 'libnvrtc*' -o -path '*/cuda*' \) -print)
[[ -z $cuda_files ]] || die "the image contains CUDA/NVIDIA files: $(echo "$cuda_files" | tr '\n' ' ')"
owner=$(stat -c %u:%g "$CHECK_ROOT/home/nonroot")
[[ $owner == "$RUN_UID:$RUN_GID" ]] || die "/home/nonroot belongs to $owner, not the image user"
[[ $(stat -c %a "$CHECK_ROOT/tmp") == 1777 ]] || die "/tmp is not world-writable with the sticky bit"
grep -q "^[^:]*:x:$RUN_UID:$RUN_GID:" "$CHECK_ROOT/etc/passwd" || die "/etc/passwd has no user $RUN_UID"

echo "image: $TAG from $DOCKERFILE's final stage, binary $binary_note"
echo "image contents (uncompressed bytes):"
(cd "$CHECK_ROOT" && find . \( -type f -printf '  %-48P %s\n' \) -o \( -type l -printf '  %-48P -> %l\n' \) | sort)

# --- run it ------------------------------------------------------------------------------

# What the NVIDIA container toolkit would inject, and the fixture the fakes serve.
install -m 0755 "$FAKE_NVML" "$CHECK_ROOT$LIBDIR/libnvidia-ml.so.1"
[[ $FAKE_CUDA == none ]] || install -m 0755 "$FAKE_CUDA" "$CHECK_ROOT$LIBDIR/libcuda.so.1"
install -d -m 0755 "$CHECK_ROOT/etc/accelprobe-check" "$CHECK_ROOT/proc" "$CHECK_ROOT/dev" "$CHECK_ROOT/sys"
install -m 0644 "$FIXTURE" "$CHECK_ROOT/etc/accelprobe-check/fixture.json"

# Runs inside new mount, PID and UTS namespaces (so every mount vanishes with the process): the
# container's host name, /proc of the new PID namespace, a tmpfs /dev with the usual nodes,
# /sys read-only, then the root, working directory, group and user of the image.
# shellcheck disable=SC2016 # expanded by the inner shell
INNER='set -e
r=$1 wd=$2 uid=$3 gid=$4
shift 4
echo "$HOSTNAME" >/proc/sys/kernel/hostname
mount -t proc proc "$r/proc"
mount -t tmpfs -o nosuid,mode=0755 tmpfs "$r/dev"
for n in null zero full random urandom tty; do
    touch "$r/dev/$n"
    mount --bind "/dev/$n" "$r/dev/$n"
done
mount --rbind /sys "$r/sys"
mount -o remount,bind,ro "$r/sys"
exec unshare --root="$r" --wd="$wd" --setgid "$gid" --setuid "$uid" -- "$@"'

# in_container STDOUT STDERR ARGS...: the entrypoint with ARGS; its exit code in $RC.
in_container() {
    local out=$1 err=$2
    shift 2
    RC=0
    timeout --kill-after=5 120 env -i "${IMAGE_ENV[@]}" HOME=/home/nonroot HOSTNAME=accelprobe-check \
        ACCELPROBE_FAKE_NVML_FIXTURE=/etc/accelprobe-check/fixture.json \
        unshare --mount --pid --uts --fork --kill-child --propagation private \
        sh -c "$INNER" sh "$CHECK_ROOT" "${cfg_workdir:-/}" "$RUN_UID" "$RUN_GID" "${ENTRYPOINT[@]}" "$@" \
        >"$out" 2>"$err" || RC=$?
}
fail_run() {
    echo "--- stdout" >&2
    head -c 2000 "$1" >&2
    echo "--- stderr" >&2
    tail -n 20 "$2" >&2
    die "$3"
}

# The GPU names of the fixture: devices' "name" values that name an NVIDIA product.
mapfile -t gpu_names < <(grep -o '"name"[[:space:]]*:[[:space:]]*"NVIDIA [^"]*"' "$FIXTURE" |
    sed 's/.*:[[:space:]]*"//; s/"$//' | sort -u)
((${#gpu_names[@]})) || die "the fixture $FIXTURE names no NVIDIA GPU"

in_container "$WORK/report.out" "$WORK/report.err" report
((RC == 0)) || fail_run "$WORK/report.out" "$WORK/report.err" "report in the image exited $RC"
for name in "${gpu_names[@]}"; do
    grep -qF "$name" "$WORK/report.out" || fail_run "$WORK/report.out" "$WORK/report.err" "report in the image does not show $name"
done
in_container "$WORK/report-json.out" "$WORK/report-json.err" report --format json
((RC == 0)) || fail_run "$WORK/report-json.out" "$WORK/report-json.err" "report --format json in the image exited $RC"
tr -d ' \n' <"$WORK/report-json.out" | grep -q '"name":"nvml","status":"loaded"' ||
    fail_run "$WORK/report-json.out" "$WORK/report-json.err" "NVML did not load in the image"
gpus=$(grep -c '' < <(tr -d ' \n' <"$WORK/report-json.out" | grep -o '"index":[0-9]*,"vendor":"nvidia"'))
echo "check report: ok, NVML loaded from $LIBDIR/libnvidia-ml.so.1, $gpus GPU(s): ${gpu_names[*]}"

TERM_FILE=$CHECK_ROOT/tmp/term
times_ms=()
for ((i = 0; i < RUNS; i++)); do
    rm -f "$TERM_FILE"
    start=$EPOCHREALTIME
    in_container "$WORK/run.out" "$WORK/run.err" run --no-bench --termination-log /tmp/term
    end=$EPOCHREALTIME
    times_ms+=("$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.1f", (e - s) * 1000 }')")
    ((RC == 0 || RC == 1)) || fail_run "$WORK/run.out" "$WORK/run.err" "run --no-bench in the image exited $RC"
    [[ $(wc -l <"$WORK/run.out") == 1 ]] || fail_run "$WORK/run.out" "$WORK/run.err" "run --no-bench printed $(wc -l <"$WORK/run.out") lines, not one"
    line=$(<"$WORK/run.out")
    [[ $line == '{'* && $line == *'"verdict":{'* ]] || fail_run "$WORK/run.out" "$WORK/run.err" "run --no-bench did not print a report with a verdict"
    for name in "${gpu_names[@]}"; do
        grep -qF "\"name\":\"$name\"" <<<"$line" || fail_run "$WORK/run.out" "$WORK/run.err" "run --no-bench's report does not show $name"
    done
    [[ -s $TERM_FILE ]] || fail_run "$WORK/run.out" "$WORK/run.err" "run --no-bench wrote no termination message"
    [[ $(stat -c %u "$TERM_FILE") == "$RUN_UID" ]] || die "the termination message was not written by uid $RUN_UID"
    term_bytes=$(stat -c %s "$TERM_FILE")
    ((term_bytes <= 4096)) || die "the termination message has $term_bytes bytes, over Kubernetes' 4096"
    passed=$(tr -d ' \n' <"$TERM_FILE" | grep -o '"passed":\(true\|false\)' | head -n 1 | cut -d: -f2)
    [[ -n $passed ]] || die "the termination message has no verdict: $(head -c 300 "$TERM_FILE")"
    if [[ $passed == true && $RC != 0 || $passed == false && $RC != 1 ]]; then
        die "run --no-bench exited $RC with a verdict passed=$passed"
    fi
done
median_ms=$(printf '%s\n' "${times_ms[@]}" | sort -n | awk '{ v[NR] = $1 } END { m = int((NR + 1) / 2); print (NR % 2) ? v[m] : (v[m] + v[m + 1]) / 2 }')
echo "check run --no-bench: ok, one JSON line with a verdict, passed=$passed (exit $RC), termination message $term_bytes bytes, written by uid $RUN_UID"
echo "summary: $(head -n 1 "$WORK/run.err" | cut -c1-160)"
echo "start-to-verdict (run --no-bench, median of $RUNS): $median_ms ms (runs: ${times_ms[*]} ms)"
echo "image size (buildah images): $IMAGE_SIZE"
echo "archive: $ARCHIVE, $ARCHIVE_BYTES bytes, ${#layers[@]} layer(s)"
echo "rootfs: $ROOTFS_BYTES bytes uncompressed, $ROOTFS_FILES files"
echo "ok: $TAG"
