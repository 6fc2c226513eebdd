#!/usr/bin/env python3
"""Training benchmark: epoch time of the book's TwoLayerNet (784-50-10, sigmoid, SGD lr 0.1, batch 100) in
`scratchnet train` (the CPU path, and each OpenCL device that `scratchnet devices` lists), in a faithful NumPy
port of the book's chapter-5 code, and in PyTorch CPU when `import torch` works, all in the same run.

Usage (from the package root, after `swift build -c release`):
    python3 Tests/Benchmarks/bench_train_vs_numpy.py [--epochs 3] [--data DIR] [--binary .build/release/scratchnet]
        [--threads 2] [--seed 1] [--numpy-dtype float32|float64]

Data: --data, else $FASHION_MNIST_DIR, else /usr/share/datasets/fashion-mnist (the four IDX .gz files; any
MNIST-format folder works). Every implementation runs the same epoch structure: a shuffled permutation of the
60000 training images cut into 600 batches of 100, one SGD step per batch. An epoch's time is the 600 steps
only (ScratchNet's `trainSeconds`, run with --no-eval; no accuracy pass anywhere). The table shows the median
epoch after the first (the first pays warm-up: kernel builds, page faults, BLAS thread start), images/s and
the speed-up over NumPy (NumPy seconds / that implementation's seconds). Losses differ between
implementations (different random initialisations and shuffles) but must all fall, as they do in the book.

ScratchNet runs FIRST: OpenBLAS's worker threads keep spinning for a while after NumPy's last call, which would
steal the second core from whatever ran right after it; for the same reason NumPy trains in child processes
(the threads die with them). --threads sets OMP_NUM_THREADS/OPENBLAS_NUM_THREADS for NumPy (fixed when NumPy is
imported) and torch.set_num_threads; the default is every core, as ScratchNet uses. With more than one thread
NumPy also runs with one: OpenBLAS's threading often slows these small products (100x784x50) down, badly so
when other work shares the cores, and the target line is judged against the faster NumPy row.
"""
import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import OrderedDict

np = None  # imported only where needed, after OpenBLAS's thread count is set in the environment

LAYERS = (784, 50, 10)
LEARNING_RATE = 0.1
BATCH_SIZE = 100
WEIGHT_INIT_STD = 0.01


# ----------------------------------------------------------------------------------------------------------
# Data: the book's dataset/mnist.py load_mnist(normalize=True, one_hot_label=False): uint8 images as float32,
# divided by 255.0; labels as integer class indices.

def load_idx(directory, prefix):
    with gzip.open(os.path.join(directory, f"{prefix}-images-idx3-ubyte.gz"), "rb") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784)
    with gzip.open(os.path.join(directory, f"{prefix}-labels-idx1-ubyte.gz"), "rb") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    x = images.astype(np.float32)
    x /= 255.0
    return x, labels.astype(np.int64)


# ----------------------------------------------------------------------------------------------------------
# The book's code, as written in deep-learning-from-scratch (common/functions.py, common/layers.py,
# common/optimizer.py, ch05/two_layer_net.py), with Sigmoid in place of Relu1 as the benchmark asks.

# common/functions.py sigmoid
def sigmoid(x):
    return 1 / (1 + np.exp(-x))


# common/functions.py softmax (2-D branch written as the book's current version: subtract the row max)
def softmax(x):
    x = x - np.max(x, axis=-1, keepdims=True)
    return np.exp(x) / np.sum(np.exp(x), axis=-1, keepdims=True)


# common/functions.py cross_entropy_error: labels (not one-hot), the 1e-7 guard inside the log
def cross_entropy_error(y, t):
    if y.ndim == 1:
        t = t.reshape(1, t.size)
        y = y.reshape(1, y.size)
    if t.size == y.size:  # one-hot targets -> label indices
        t = t.argmax(axis=1)
    batch_size = y.shape[0]
    return -np.sum(np.log(y[np.arange(batch_size), t] + 1e-7)) / batch_size


# common/layers.py Affine
class Affine:
    def __init__(self, W, b):
        self.W = W
        self.b = b
        self.x = None
        self.original_x_shape = None
        self.dW = None
        self.db = None

    def forward(self, x):
        self.original_x_shape = x.shape
        x = x.reshape(x.shape[0], -1)
        self.x = x
        # x (N,K) · W (K,M) + b (M) -> out (N,M)
        out = np.dot(self.x, self.W) + self.b
        return out

    def backward(self, dout):
        # dout (N,M) · W (K,M)ᵀ -> dx (N,K)
        dx = np.dot(dout, self.W.T)
        # x (N,K)ᵀ · dout (N,M) -> dW (K,M)
        self.dW = np.dot(self.x.T, dout)
        # Σₙ dout[n] -> db (M)
        self.db = np.sum(dout, axis=0)
        dx = dx.reshape(*self.original_x_shape)
        return dx


# common/layers.py Sigmoid
class Sigmoid:
    def __init__(self):
        self.out = None

    def forward(self, x):
        out = sigmoid(x)
        self.out = out
        return out

    def backward(self, dout):
        dx = dout * (1.0 - self.out) * self.out
        return dx


# common/layers.py SoftmaxWithLoss
class SoftmaxWithLoss:
    def __init__(self):
        self.loss = None
        self.y = None
        self.t = None

    def forward(self, x, t):
        self.t = t
        self.y = softmax(x)
        self.loss = cross_entropy_error(self.y, self.t)
        return self.loss

    def backward(self, dout=1):
        batch_size = self.t.shape[0]
        if self.t.size == self.y.size:  # one-hot targets
            dx = (self.y - self.t) / batch_size
        else:
            dx = self.y.copy()
            dx[np.arange(batch_size), self.t] -= 1
            dx = dx / batch_size
        return dx


# ch05/two_layer_net.py TwoLayerNet (Affine1 -> Sigmoid1 -> Affine2 -> SoftmaxWithLoss)
class TwoLayerNet:
    def __init__(self, input_size, hidden_size, output_size, weight_init_std=WEIGHT_INIT_STD, dtype=None):
        self.params = {}
        self.params["W1"] = weight_init_std * np.random.randn(input_size, hidden_size)
        self.params["b1"] = np.zeros(hidden_size)
        self.params["W2"] = weight_init_std * np.random.randn(hidden_size, output_size)
        self.params["b2"] = np.zeros(output_size)
        if dtype is not None:  # float32 to match ScratchNet's arithmetic; the book's float64 otherwise
            for key in self.params:
                self.params[key] = self.params[key].astype(dtype)

        self.layers = OrderedDict()
        self.layers["Affine1"] = Affine(self.params["W1"], self.params["b1"])
        self.layers["Sigmoid1"] = Sigmoid()
        self.layers["Affine2"] = Affine(self.params["W2"], self.params["b2"])
        self.lastLayer = SoftmaxWithLoss()

    def predict(self, x):
        for layer in self.layers.values():
            x = layer.forward(x)
        return x

    def loss(self, x, t):
        y = self.predict(x)
        return self.lastLayer.forward(y, t)

    def gradient(self, x, t):
        # forward
        self.loss(x, t)
        # backward
        dout = 1
        dout = self.lastLayer.backward(dout)
        layers = list(self.layers.values())
        layers.reverse()
        for layer in layers:
            dout = layer.backward(dout)
        grads = {}
        grads["W1"], grads["b1"] = self.layers["Affine1"].dW, self.layers["Affine1"].db
        grads["W2"], grads["b2"] = self.layers["Affine2"].dW, self.layers["Affine2"].db
        return grads


# common/optimizer.py SGD (in place, so the Affine layers keep seeing the updated W and b)
class SGD:
    def __init__(self, lr=0.01):
        self.lr = lr

    def update(self, params, grads):
        for key in params.keys():
            params[key] -= self.lr * grads[key]


def numpy_train(x_train, t_train, epochs, seed, dtype):
    """The book's ch05/train_neuralnet.py loop, with epochs of a shuffled permutation instead of
    np.random.choice batches. The loss per step is the one gradient() computes (the book's extra
    network.loss() call after the update is left out: it is bookkeeping, not training, and ScratchNet does
    not do it either). Returns [(seconds, mean train loss)] per epoch."""
    np.random.seed(seed)
    network = TwoLayerNet(LAYERS[0], LAYERS[1], LAYERS[2], dtype=dtype)
    optimizer = SGD(lr=LEARNING_RATE)
    train_size = x_train.shape[0]
    steps = train_size // BATCH_SIZE
    results = []
    for _ in range(epochs):
        permutation = np.random.permutation(train_size)
        loss_sum = 0.0
        start = time.perf_counter()
        for i in range(steps):
            batch_mask = permutation[i * BATCH_SIZE:(i + 1) * BATCH_SIZE]
            x_batch = x_train[batch_mask]
            t_batch = t_train[batch_mask]
            grad = network.gradient(x_batch, t_batch)
            optimizer.update(network.params, grad)
            loss_sum += float(network.lastLayer.loss)
        results.append((time.perf_counter() - start, loss_sum / steps))
    return results


# ----------------------------------------------------------------------------------------------------------
# PyTorch CPU, when installed: the same network, initialisation scale, loss and update, written the usual
# PyTorch way (autograd; F.cross_entropy is log-softmax + NLL, the same loss without the 1e-7 guard).

def torch_train(x_train, t_train, epochs, seed, threads):
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    x = torch.from_numpy(x_train)
    t = torch.from_numpy(t_train)
    W1 = (WEIGHT_INIT_STD * torch.randn(LAYERS[0], LAYERS[1])).requires_grad_()
    b1 = torch.zeros(LAYERS[1], requires_grad=True)
    W2 = (WEIGHT_INIT_STD * torch.randn(LAYERS[1], LAYERS[2])).requires_grad_()
    b2 = torch.zeros(LAYERS[2], requires_grad=True)
    params = [W1, b1, W2, b2]
    train_size = x.shape[0]
    steps = train_size // BATCH_SIZE
    results = []
    for _ in range(epochs):
        permutation = torch.randperm(train_size)
        loss_sum = 0.0
        start = time.perf_counter()
        for i in range(steps):
            batch_mask = permutation[i * BATCH_SIZE:(i + 1) * BATCH_SIZE]
            x_batch, t_batch = x[batch_mask], t[batch_mask]
            # x (100,784) · W1 + b1 -> sigmoid -> · W2 + b2 -> logits (100,10)
            logits = torch.sigmoid(x_batch @ W1 + b1) @ W2 + b2
            loss = F.cross_entropy(logits, t_batch)
            for p in params:
                p.grad = None
            loss.backward()
            with torch.no_grad():
                for p in params:
                    p -= LEARNING_RATE * p.grad
            loss_sum += loss.item()
        results.append((time.perf_counter() - start, loss_sum / steps))
    return results, torch.__version__


# ----------------------------------------------------------------------------------------------------------
# ScratchNet

def opencl_devices(binary):
    """Ids of the OpenCL devices `scratchnet devices` lists (empty when it lists none or fails)."""
    run = subprocess.run([binary, "devices", "--json", "--no-smoke-test"], capture_output=True, text=True)
    if run.returncode != 0:
        print(f"note: `scratchnet devices` failed: {run.stderr.strip()}", file=sys.stderr)
        return []
    try:
        return [d["id"] for d in json.loads(run.stdout).get("openclDevices", [])]
    except (ValueError, KeyError, TypeError) as error:
        print(f"note: could not read `scratchnet devices --json`: {error}", file=sys.stderr)
        return []


def scratchnet_train(binary, data, device, epochs, seed, out_dir):
    """Runs `scratchnet train --json --no-eval` on one device; returns [(trainSeconds, trainLoss)] per epoch
    and the device name it reported, or None (with a note) when the run fails."""
    out = os.path.join(out_dir, f"{device.replace(':', '_')}.safetensors")
    cmd = [binary, "train", "--data", data, "--layers", ",".join(map(str, LAYERS)), "--activation", "sigmoid",
           "--optimizer", "sgd", "--lr", str(LEARNING_RATE), "--epochs", str(epochs),
           "--batch-size", str(BATCH_SIZE), "--initialization", str(WEIGHT_INIT_STD), "--seed", str(seed),
           "--device", device, "--out", out, "--plot", "none", "--csv", "none", "--json", "--no-eval"]
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        print(f"note: `{' '.join(cmd)}` failed ({run.returncode}): {run.stderr.strip()}", file=sys.stderr)
        return None
    epochs_out, name = [], device
    for line in run.stdout.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        if "trainSeconds" not in record:
            continue
        epochs_out.append((float(record["trainSeconds"]), float(record["trainLoss"])))
        name = record.get("device", device)
    if not epochs_out:
        print(f"note: `scratchnet train` on {device} printed no epoch lines", file=sys.stderr)
        return None
    return epochs_out, name


# ----------------------------------------------------------------------------------------------------------

def steady_seconds(results):
    """Median epoch time after the first (the first alone when there is one epoch)."""
    seconds = sorted(s for s, _ in (results[1:] if len(results) > 1 else results))
    n = len(seconds)
    return seconds[n // 2] if n % 2 else 0.5 * (seconds[n // 2 - 1] + seconds[n // 2])


def blas_env(threads):
    env = dict(os.environ)
    for key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[key] = str(threads)
    return env


def numpy_in_subprocess(args, threads, dtype):
    """Runs the NumPy training in a fresh Python whose OpenBLAS has `threads` threads (the count is fixed when
    NumPy is imported), so its spinning worker threads die with it and cannot slow what runs next."""
    cmd = [sys.executable, os.path.abspath(__file__), "--numpy-worker", "--threads", str(threads),
           "--epochs", str(args.epochs), "--data", args.data, "--seed", str(args.seed),
           "--numpy-dtype", dtype]
    run = subprocess.run(cmd, capture_output=True, text=True, env=blas_env(threads))
    if run.returncode != 0:
        sys.exit(f"error: the NumPy run failed: {run.stderr.strip()}")
    report = json.loads(run.stdout.strip().splitlines()[-1])
    return [tuple(e) for e in report["epochs"]], report["numpy"]


def numpy_worker(args):
    global np
    import numpy
    np = numpy
    x_train, t_train = load_idx(args.data, "train")
    results = numpy_train(x_train, t_train, args.epochs, args.seed, getattr(np, args.numpy_dtype))
    print(json.dumps({"epochs": results, "numpy": np.__version__}))


def main():
    global np
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--data", default=os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))
    parser.add_argument("--binary", default=os.path.join(os.getcwd(), ".build/release/scratchnet"))
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="OpenBLAS/OpenMP threads for NumPy and torch (default: every core, as ScratchNet "
                             "uses); when above 1, NumPy also runs with 1 thread, which is often faster for "
                             "these small products, and the target is judged against the faster NumPy")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--numpy-dtype", choices=["float32", "float64", "both"], default="both",
                        help="NumPy weights' dtype: the book's float64 (np.random.randn makes every product "
                             "float64), float32 (ScratchNet's arithmetic), or both (the default) in one run")
    parser.add_argument("--numpy-only", action="store_true", help="skip ScratchNet and PyTorch")
    parser.add_argument("--numpy-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.epochs < 1 or args.threads < 1:
        sys.exit("error: --epochs and --threads must be at least 1")
    if args.numpy_worker:
        numpy_worker(args)
        return

    # ScratchNet first (see the docstring); NumPy then runs in child processes, so this one never starts
    # OpenBLAS threads (it uses NumPy only to load the data for PyTorch).
    scratch = []
    if not args.numpy_only:
        if not os.path.exists(args.binary):
            sys.exit(f"error: {args.binary} not found: run `swift build -c release` first or pass --binary")
        with tempfile.TemporaryDirectory() as tmp:
            for device in ["cpu"] + opencl_devices(args.binary):
                result = scratchnet_train(args.binary, args.data, device, args.epochs, args.seed, tmp)
                if result is not None:
                    scratch.append((f"scratchnet {device}", result[0], result[1]))

    numpy_rows = []
    dtypes = ["float64", "float32"] if args.numpy_dtype == "both" else [args.numpy_dtype]
    for dtype in dtypes:
        for threads in sorted({args.threads, 1}, reverse=True):
            results, numpy_version = numpy_in_subprocess(args, threads, dtype)
            label = f"numpy {'f64 (book)' if dtype == 'float64' else 'f32'} {threads}t"
            numpy_rows.append((label, results, dtype))

    torch_results, torch_note = None, None
    if not args.numpy_only:
        try:
            import torch  # noqa: F401
        except ImportError as error:
            torch_note = (f"PyTorch: not installable here ({error}); the PyPI wheels are the multi-GB CUDA "
                          "builds and the CPU wheel index is unreachable")
        else:
            os.environ.update(blas_env(args.threads))
            import numpy
            np = numpy
            x_train, t_train = load_idx(args.data, "train")
            torch_results, version = torch_train(x_train, t_train, args.epochs, args.seed, args.threads)
            torch_note = f"PyTorch {version} CPU, {args.threads} threads"

    steps = 60000 // BATCH_SIZE
    images = steps * BATCH_SIZE
    load = os.getloadavg()
    print(f"TwoLayerNet {'-'.join(map(str, LAYERS))} sigmoid, SGD lr {LEARNING_RATE}, batch {BATCH_SIZE}: "
          f"{steps} steps/epoch over the {images} training images of {args.data}, {args.epochs} epochs, "
          f"training steps only (no evaluation)")
    print(f"NumPy {numpy_version} running the book's ch05 code with {' and '.join(dtypes)} weights; "
          f"load average after the runs {load[0]:.2f} (other work on the machine slows every row)")
    rows = numpy_rows + [(label, res, name) for label, res, name in scratch]
    if torch_results is not None:
        rows.append((f"pytorch cpu {args.threads}t", torch_results, None))
    base = steady_seconds(numpy_rows[0][1])  # NumPy with --threads threads
    best = min(steady_seconds(res) for _, res, _ in numpy_rows)
    header = (f"{'implementation':<22}{'epoch s':>9}{'1st epoch s':>13}{'images/s':>11}{'x NumPy':>9}"
              f"{'x best NumPy':>14}{'final loss':>12}")
    print(header)
    print("-" * len(header))
    for label, res, _ in rows:
        s = steady_seconds(res)
        print(f"{label:<22}{s:>9.3f}{res[0][0]:>13.3f}{images / s:>11.0f}{base / s:>9.2f}{best / s:>14.2f}"
              f"{res[-1][1]:>12.4f}")
    print(f"(epoch s: median of the epochs after the first; x NumPy: {numpy_rows[0][0]}'s epoch s / this one's; "
          "x best NumPy: the same against the faster NumPy row; final loss: mean train loss of the last epoch)")
    if torch_note:
        print(torch_note)

    print()
    for label, res, _ in numpy_rows:
        print(f"{label:<22} train loss per epoch: {', '.join(f'{l:.4f}' for _, l in res)}; "
              f"seconds: {', '.join(f'{s:.3f}' for s, _ in res)}")
    for label, res, name in scratch:
        print(f"{label:<22} device {name}: final train loss {res[-1][1]:.4f} "
              f"(per epoch: {', '.join(f'{l:.4f}' for _, l in res)}; "
              f"seconds: {', '.join(f'{s:.3f}' for s, _ in res)})")
    if torch_results is not None:
        print(f"{'pytorch cpu':<22} train loss per epoch: {', '.join(f'{l:.4f}' for _, l in torch_results)}")

    cpu = next((res for label, res, _ in scratch if label == "scratchnet cpu"), None)
    if cpu is not None:
        line = "\nIssue 4 target, CPU path >= 3x NumPy:"
        for dtype in dtypes:
            fastest = min(steady_seconds(res) for _, res, d in numpy_rows if d == dtype)
            ratio = fastest / steady_seconds(cpu)
            name = "the book's float64 code" if dtype == "float64" else "float32 NumPy"
            line += f" vs {name} (faster thread count) {ratio:.2f}x, {'met' if ratio >= 3.0 else 'NOT met'};"
        if torch_results is not None:
            vs_torch = steady_seconds(torch_results) / steady_seconds(cpu)
            line += f" >= PyTorch CPU: {vs_torch:.2f}x, {'met' if vs_torch >= 1.0 else 'NOT met'}"
        else:
            line += " PyTorch CPU not measured"
        print(line)


if __name__ == "__main__":
    # OpenBLAS tuning overrides that some machines set slow a current NumPy down; drop them for this process.
    dropped = [os.environ.pop(k, None) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")]
    if any(v is not None for v in dropped):
        os.execv(sys.executable, [sys.executable] + sys.argv)
    main()
