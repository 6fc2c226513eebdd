#!/usr/bin/env python3
"""Runs the book's NumPy inference (ch03/neuralnet_mnist_batch.py), NumPy SGEMM, CLBlast SGEMM (when
libclblast-dev is installed) and `scratchnet bench` in the same run, and prints every number with its ratio
to NumPy (and to CLBlast).

Usage (from the package root, after `swift build -c release`):
    python3 Tests/Benchmarks/bench_vs_numpy.py [--scratchnet .build/release/scratchnet] [--repeats 5]
        [--devices cpu,opencl:0] [--no-gemm] [--gemm-sizes 128,256,512,1024,2048]

Data: $MNIST_DIR (else ../shared/mnist); weights: $SCRATCHNET_WEIGHTS (else ../shared/book/sample_weight.pkl).
NumPy's inference runs as in the book: images loaded and normalised once (load_mnist(normalize=True)), then the
timed loop does predict(x[i:i+batch]) and argmax, best of N after a warm-up. CLBlast is a comparison only:
Tests/Benchmarks/clblast_sgemm.c is compiled into a temporary folder when CLBlast's headers are present.
"""
import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import pickle

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
MNIST_SHAPES = [(10000, 784, 50), (10000, 50, 100), (100, 784, 50)]


def load_mnist_test(directory):
    with gzip.open(os.path.join(directory, "t10k-images-idx3-ubyte.gz"), "rb") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784)
    with gzip.open(os.path.join(directory, "t10k-labels-idx1-ubyte.gz"), "rb") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    return images.astype(np.float32) / 255.0, labels


# The book's ch03 code: sigmoid, softmax (subtract the max), predict.
def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def softmax(x):
    x = x - np.max(x, axis=-1, keepdims=True)
    return np.exp(x) / np.sum(np.exp(x), axis=-1, keepdims=True)


def predict(network, x):
    W1, W2, W3 = network["W1"], network["W2"], network["W3"]
    b1, b2, b3 = network["b1"], network["b2"], network["b3"]
    a1 = np.dot(x, W1) + b1
    z1 = sigmoid(a1)
    a2 = np.dot(z1, W2) + b2
    z2 = sigmoid(a2)
    a3 = np.dot(z2, W3) + b3
    return softmax(a3)


def spread(samples):
    s = sorted(samples)
    return {"best": s[-1], "median": s[len(s) // 2], "worst": s[0]}


def numpy_inference(network, x, t, batch_size, repeats):
    rates, accuracy = [], 0.0
    for rep in range(repeats + 1):
        start = time.perf_counter()
        correct = 0
        for i in range(0, len(x), batch_size):
            y = predict(network, x[i:i + batch_size])
            correct += np.sum(np.argmax(y, axis=1) == t[i:i + batch_size])
        rate = len(x) / (time.perf_counter() - start)
        accuracy = correct / len(x)
        if rep > 0:
            rates.append(rate)
    return spread(rates), accuracy


def numpy_sgemm(m, k, n, repeats):
    rng = np.random.default_rng(m * 31 + k * 7 + n)
    a = rng.uniform(-1, 1, (m, k)).astype(np.float32)
    b = rng.uniform(-1, 1, (k, n)).astype(np.float32)
    c = np.empty((m, n), np.float32)
    start = time.perf_counter()
    np.dot(a, b, out=c)
    once = time.perf_counter() - start
    reps = max(1, min(1000, int(0.1 / max(once, 1e-6))))
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(reps):
            np.dot(a, b, out=c)
        rates.append(2.0 * m * k * n * reps / (time.perf_counter() - start) / 1e9)
    return spread(rates)


def clblast_sgemm(shapes, repeats):
    """GFLOP/s of CLBlast SGEMM per shape, or None when CLBlast is not installed."""
    if not os.path.exists("/usr/include/clblast_c.h") or shutil.which("gcc") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "clblast_sgemm")
        build = subprocess.run(["gcc", "-O2", "-o", exe, os.path.join(HERE, "clblast_sgemm.c"), "-lclblast", "-lOpenCL"],
                               capture_output=True, text=True)
        if build.returncode != 0:
            print(f"note: could not build the CLBlast harness: {build.stderr.strip()}", file=sys.stderr)
            return None
        args = [exe, "--repeats", str(repeats)] + [f"{m}x{k}x{n}" for m, k, n in shapes]
        run = subprocess.run(args, capture_output=True, text=True)
        if run.returncode != 0:
            print(f"note: the CLBlast harness failed: {run.stderr.strip()}", file=sys.stderr)
            return None
        results = {}
        for line in run.stdout.splitlines():
            if line.startswith("{"):
                r = json.loads(line)
                results[(r["m"], r["k"], r["n"])] = r["gflops"]
        return results


def main():
    here = os.getcwd()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scratchnet", default=os.path.join(here, ".build/release/scratchnet"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-sizes", default="1,100,10000")
    parser.add_argument("--gemm-sizes", default="128,256,512,1024,2048")
    parser.add_argument("--no-gemm", action="store_true")
    parser.add_argument("--devices", default=None, help="passed to scratchnet bench --devices")
    args = parser.parse_args()

    mnist = os.environ.get("MNIST_DIR", os.path.join(here, "..", "shared", "mnist"))
    weights = os.environ.get("SCRATCHNET_WEIGHTS", os.path.join(here, "..", "shared", "book", "sample_weight.pkl"))
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    squares = [int(s) for s in args.gemm_sizes.split(",")]
    shapes = [(s, s, s) for s in squares] + MNIST_SHAPES
    if not os.path.exists(args.scratchnet):
        sys.exit(f"error: {args.scratchnet} not found: run `swift build -c release` first or pass --scratchnet")

    # ScratchNet first: OpenBLAS's worker threads keep spinning for a while after NumPy's last call, which
    # would steal the second core from whatever runs right after it.
    cmd = [args.scratchnet, "bench", "--json", "--repeats", str(args.repeats), "--batch-sizes", args.batch_sizes,
           "--data", mnist, "--weights", weights, "--gemm-sizes", args.gemm_sizes]
    if not args.no_gemm:
        cmd.append("--gemm")
    if args.devices:
        cmd += ["--devices", args.devices]
    report = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)

    x, t = load_mnist_test(mnist)
    with open(weights, "rb") as f:
        network = pickle.load(f)
    numpy_results = {b: numpy_inference(network, x, t, b, args.repeats) for b in sizes}
    numpy_gemm = {} if args.no_gemm else {s: numpy_sgemm(*s, args.repeats) for s in shapes}
    clblast = None if args.no_gemm else clblast_sgemm(shapes, args.repeats)

    print(f"MNIST inference, {len(x)} test images, images/s, best of {args.repeats} after a warm-up (median); "
          f"NumPy {np.__version__} running the book's code in the same run")
    header = (f"{'runner':<10}{'batch':>7}{'predictions':>13}{'median':>11}{'x NumPy':>9}"
              f"{'w/ probabilities':>18}{'x NumPy':>9}{'accuracy':>10}")
    print(header)
    print("-" * len(header))
    for b in sizes:
        r, acc = numpy_results[b]
        print(f"{'numpy':<10}{b:>7}{r['best']:>13.0f}{r['median']:>11.0f}{1.0:>9.2f}{r['best']:>18.0f}{1.0:>9.2f}{acc:>10.4f}")
    for row in report["throughput"]:
        base = numpy_results[row["batchSize"]][0]["best"]
        p, q = row["predictions"], row["probabilities"]
        print(f"{row['device']:<10}{row['batchSize']:>7}{p['best']:>13.0f}{p['median']:>11.0f}{p['best'] / base:>9.2f}"
              f"{q['best']:>18.0f}{q['best'] / base:>9.2f}{row['accuracy']:>10.4f}")

    if report.get("startup"):
        print("\nTime to first result in a fresh process (setup + kernel build + first batch of 100) and peak memory:")
        print(f"{'device':<10}{'cold ms':>10}{'warm ms':>10}{'cold proc ms':>14}{'warm proc ms':>14}{'infer peak RSS MiB':>20}")
        for s in report["startup"]:
            print(f"{s['device']:<10}{s['coldMs']:>10.1f}{s['warmMs']:>10.1f}{s['coldProcessMs']:>14.1f}"
                  f"{s['warmProcessMs']:>14.1f}{s['peakRSSMiB']:>20.1f}")

    if report.get("gemm"):
        print(f"\nSGEMM float32 GFLOP/s, best of {args.repeats} (median); NumPy = OpenBLAS"
              + ("; CLBlast on opencl:0" if clblast else "; CLBlast not installed (apt-get install libclblast-dev)"))
        header = f"{'runner':<10}{'M x K x N':>16}{'GFLOP/s':>10}{'median':>10}{'x NumPy':>9}{'x CLBlast':>11}"
        print(header)
        print("-" * len(header))
        for s in shapes:
            g = numpy_gemm[s]
            print(f"{'numpy':<10}{'x'.join(map(str, s)):>16}{g['best']:>10.1f}{g['median']:>10.1f}{1.0:>9.2f}{'':>11}")
            if clblast and s in clblast:
                print(f"{'clblast':<10}{'x'.join(map(str, s)):>16}{clblast[s]:>10.1f}{'':>10}{clblast[s] / g['best']:>9.2f}{1.0:>11.2f}")
            for row in report["gemm"]:
                if (row["m"], row["k"], row["n"]) != s:
                    continue
                r = row["gflops"]
                vs_clblast = f"{r['best'] / clblast[s]:>11.2f}" if clblast and s in clblast and row["device"] != "cpu" else f"{'':>11}"
                print(f"{row['device']:<10}{'x'.join(map(str, s)):>16}{r['best']:>10.1f}{r['median']:>10.1f}"
                      f"{r['best'] / g['best']:>9.2f}{vs_clblast}")


if __name__ == "__main__":
    # OpenBLAS tuning overrides that some machines set slow a current NumPy down; drop them for this process.
    dropped = [os.environ.pop(k, None) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")]
    if any(v is not None for v in dropped):
        os.execv(sys.executable, [sys.executable] + sys.argv)
    main()
