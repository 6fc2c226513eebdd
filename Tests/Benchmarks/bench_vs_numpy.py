#!/usr/bin/env python3
"""Runs the book's NumPy inference (ch03/neuralnet_mnist_batch.py) and `scratchnet bench` in the same run
and prints images/s per batch size with the ratios ScratchNet / NumPy.

Usage (from the package root, after `swift build -c release`):
    python3 Tests/Benchmarks/bench_vs_numpy.py [--scratchnet .build/release/scratchnet] [--repeats 5]

Data: $MNIST_DIR (else ../shared/mnist); weights: $SCRATCHNET_WEIGHTS (else ../shared/book/sample_weight.pkl).
NumPy's part runs as in the book: images loaded and normalised once (load_mnist(normalize=True, flatten=True)),
then the timed loop does predict(x[i:i+batch]) and argmax, best of N after a warm-up.
"""
import argparse
import gzip
import json
import os
import pickle
import subprocess
import sys
import time

import numpy as np


def load_mnist_test(directory):
    with gzip.open(os.path.join(directory, "t10k-images-idx3-ubyte.gz"), "rb") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784)
    with gzip.open(os.path.join(directory, "t10k-labels-idx1-ubyte.gz"), "rb") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    return images.astype(np.float32) / 255.0, labels


# The book's ch03 code, verbatim in spirit: sigmoid, softmax (subtract the max), predict.
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


def numpy_bench(network, x, t, batch_size, repeats):
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
    rates.sort()
    return {"best": rates[-1], "median": rates[len(rates) // 2], "worst": rates[0], "accuracy": accuracy}


def main():
    here = os.getcwd()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scratchnet", default=os.path.join(here, ".build/release/scratchnet"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-sizes", default="1,100,10000")
    parser.add_argument("--devices", default=None, help="passed to scratchnet bench --devices")
    args = parser.parse_args()

    mnist = os.environ.get("MNIST_DIR", os.path.join(here, "..", "shared", "mnist"))
    weights = os.environ.get("SCRATCHNET_WEIGHTS", os.path.join(here, "..", "shared", "book", "sample_weight.pkl"))
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    if not os.path.exists(args.scratchnet):
        sys.exit(f"error: {args.scratchnet} not found: run `swift build -c release` first or pass --scratchnet")

    x, t = load_mnist_test(mnist)
    with open(weights, "rb") as f:
        network = pickle.load(f)
    numpy_results = {b: numpy_bench(network, x, t, b, args.repeats) for b in sizes}

    cmd = [args.scratchnet, "bench", "--json", "--repeats", str(args.repeats), "--batch-sizes", args.batch_sizes,
           "--data", mnist, "--weights", weights]
    if args.devices:
        cmd += ["--devices", args.devices]
    report = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)

    print(f"MNIST inference, {len(x)} test images, best of {args.repeats} after a warm-up; "
          f"NumPy {np.__version__} (book code) and ScratchNet in the same run")
    header = f"{'runner':<14}{'batch':>7}{'images/s':>14}{'median':>12}{'worst':>12}{'accuracy':>10}{'x NumPy':>9}"
    print(header)
    print("-" * len(header))
    for b in sizes:
        r = numpy_results[b]
        print(f"{'numpy':<14}{b:>7}{r['best']:>14.0f}{r['median']:>12.0f}{r['worst']:>12.0f}{r['accuracy']:>10.4f}{1.0:>9.2f}")
    for row in report["throughput"]:
        base = numpy_results[row["batchSize"]]["best"]
        print(f"{row['device']:<14}{row['batchSize']:>7}{row['bestImagesPerSecond']:>14.0f}"
              f"{row['medianImagesPerSecond']:>12.0f}{row['worstImagesPerSecond']:>12.0f}"
              f"{row['accuracy']:>10.4f}{row['bestImagesPerSecond'] / base:>9.2f}")
    if report.get("startup"):
        print("\nTime to first result in a fresh process (device setup + kernel build + first batch of 100):")
        print(f"{'device':<14}{'cold ms':>10}{'warm ms':>10}{'cold proc ms':>14}{'warm proc ms':>14}")
        for s in report["startup"]:
            print(f"{s['device']:<14}{s['coldMs']:>10.1f}{s['warmMs']:>10.1f}{s['coldProcessMs']:>14.1f}{s['warmProcessMs']:>14.1f}")


if __name__ == "__main__":
    # OpenBLAS tuning overrides that some machines set slow a current NumPy down; drop them for this process.
    dropped = [os.environ.pop(k, None) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")]
    if any(v is not None for v in dropped):
        os.execv(sys.executable, [sys.executable] + sys.argv)
    main()
