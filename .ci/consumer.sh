#!/usr/bin/env bash
# Builds Tests/Consumer, a package that depends on ScratchNet by version (`from: "0.1.0"`), against a tagged clone
# of this checkout, twice: as a user gets it by default (no flags: SwiftPM refuses ScratchNet's -target-cpu in a
# versioned dependency, so multiply-adds are fmaf calls and the CPU backend says so on stderr), and with the one
# documented consumer setting (-Xswiftc -target-cpu -Xswiftc haswell: vfmadd instructions, no warning). Both
# must score the book's 0.9352 on MNIST; neither may link the OpenCL loader (CPU-only products).
# Usage: .ci/consumer.sh MNIST_DIR WEIGHTS
set -euo pipefail
cd "$(dirname "$0")/.."
mnist="$1"
weights="$2"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# The clone's folder name is the package identity the consumer's manifest names ("scratchnet").
git clone -q . "$work/scratchnet"
git -C "$work/scratchnet" tag -l | xargs -r git -C "$work/scratchnet" tag -d >/dev/null
git -C "$work/scratchnet" tag 0.1.0
cp -R Tests/Consumer "$work/consumer"
export SCRATCHNET_URL="$work/scratchnet"

fail() { echo "ci: consumer: $*" >&2; exit 1; }

run_consumer() {  # name, extra build flags...
    local name="$1"; shift
    echo "ci: consumer ($name): swift build -c release $*"
    (cd "$work/consumer" && swift build -c release --scratch-path "$work/build-$name" "$@" 2>&1 | tail -2)
    local bin="$work/build-$name/release/consumer"
    ldd "$bin" | grep -i opencl && fail "$name: the CPU-only consumer links the OpenCL loader"
    "$bin" "$mnist" "$weights" >"$work/$name.out" 2>"$work/$name.err" || { cat "$work/$name.err" >&2; fail "$name: run failed"; }
    cat "$work/$name.out"
    sed 's/^/  stderr: /' "$work/$name.err"
    grep -qx "accuracy: 0.9352" "$work/$name.out" || fail "$name: accuracy is not the book's 0.9352"
}

run_consumer plain
if [ "$(uname -m)" = x86_64 ]; then
    grep -qx "fma: library call" "$work/plain.out" || fail "plain: expected fmaf calls without the setting"
    grep -q "fmaf calls" "$work/plain.err" || fail "plain: the run-time FMA warning is missing"
fi

run_consumer haswell -Xswiftc -target-cpu -Xswiftc haswell
if [ "$(uname -m)" = x86_64 ]; then
    grep -qx "fma: inline" "$work/haswell.out" || fail "haswell: expected FMA instructions with the setting"
    [ -s "$work/haswell.err" ] && fail "haswell: unexpected stderr"
    n=$(objdump -d "$work/build-haswell/release/consumer" | grep -c vfmadd || true)
    echo "ci: consumer (haswell): $n vfmadd instructions"
    [ "$n" -gt 0 ] || fail "haswell: no vfmadd in the binary"
fi
echo "ci: consumer package by version: ok"
