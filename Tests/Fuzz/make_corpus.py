#!/usr/bin/env python3
# Writes the seed corpora for Tests/Fuzz/fuzz.sh: small valid (and a few deliberately odd) files per target in
# Tests/Fuzz/corpus/<target>/. Needs python3 + numpy. Run: python3 Tests/Fuzz/make_corpus.py
import collections
import gzip
import io
import json
import os
import pickle
import shutil
import struct
import zipfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "ScratchNetIOTests", "Fixtures")
OUT = os.path.join(HERE, "corpus")


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def small_arrays():
    return {
        "W1": np.arange(6, dtype=np.float32).reshape(2, 3) / 4,
        "b1": np.array([0.5, -1.0], dtype=np.float32),
        "F": np.asfortranarray(np.arange(6, dtype=np.float64).reshape(3, 2)),
        "be": np.array([1.5, 2.5], dtype=">f4"),
        "u8": np.array([0, 255], dtype=np.uint8),
        "h": np.array([1.0, -2.0], dtype=np.float16),
        "s": np.float32(3.0),
    }


def pickles():
    a = small_arrays()
    for proto in (2, 3, 4, 5):
        put("pickle", f"p{proto}.pkl", pickle.dumps(a, protocol=proto))
    put("pickle", "ordered.pkl", pickle.dumps(collections.OrderedDict(W=a["W1"]), protocol=2))
    put("pickle", "containers.pkl", pickle.dumps({"x": [1, (2, 3), {"k": b"\x00"}, {4}, frozenset([5]), 1 << 70, 2.5, None, True],
                                                   "a": a["b1"], "same": a["b1"]}, protocol=4))
    put("pickle", "toplevel_array.pkl", pickle.dumps(a["W1"], protocol=4))
    put("pickle", "proto0.pkl", pickle.dumps({"a": 1, "b": [1.5, "x"]}, protocol=0))
    put("pickle", "proto1.pkl", pickle.dumps({"a": 1, "b": [1.5, "x"]}, protocol=1))
    put("pickle", "os_system.pkl", b"\x80\x04cos\nsystem\nX\x04\x00\x00\x00echo\x85R.")
    for name in ("p2_np1.pkl", "p4_np2.pkl", "p5_np2.pkl", "object_array.pkl", "hostile_reconstruct_dtype.pkl"):
        shutil.copy(os.path.join(FIXTURES, name), os.path.join(OUT, "pickle", name))


def npy_bytes(arr, version=None):
    b = io.BytesIO()
    if version is None:
        np.save(b, arr)
    else:
        np.lib.format.write_array(b, arr, version=version)
    return b.getvalue()


def npys():
    a = small_arrays()
    for k, v in a.items():
        put("npy", f"{k}.npy", npy_bytes(np.asarray(v)))
    put("npy", "v2.npy", npy_bytes(a["W1"], (2, 0)))
    put("npy", "v3.npy", npy_bytes(a["W1"], (3, 0)))
    put("npy", "i8.npy", npy_bytes(np.array([-1, 2], dtype=np.int64)))
    put("npy", "bool.npy", npy_bytes(np.array([True, False])))
    put("npy", "empty.npy", npy_bytes(np.zeros((0, 3), dtype=np.float32)))
    put("npy", "f3.npy", npy_bytes(np.asfortranarray(np.arange(8, dtype=np.float32).reshape(2, 2, 2))))


def npzs():
    a = {k: np.asarray(v) for k, v in small_arrays().items()}
    b = io.BytesIO(); np.savez(b, **a); put("npz", "stored.npz", b.getvalue())
    b = io.BytesIO(); np.savez_compressed(b, **a); put("npz", "deflated.npz", b.getvalue())
    b = io.BytesIO(); np.savez_compressed(b, z=np.zeros(1000, dtype=np.float32)); put("npz", "zeros.npz", b.getvalue())
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("x.npy", npy_bytes(a["W1"]))
        z.writestr("readme.txt", "not an array")
        z.comment = b"comment"
    put("npz", "mixed.npz", b.getvalue())
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w", allowZip64=True) as z:
        with z.open("big.npy", "w", force_zip64=True) as f:
            f.write(npy_bytes(a["b1"]))
    put("npz", "zip64.npz", b.getvalue())


def safetensors_bytes(tensors, meta=None):
    header, data, off = {}, b"", 0
    if meta:
        header["__metadata__"] = meta
    for name, (dtype, arr) in tensors.items():
        raw = arr.tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [off, off + len(raw)]}
        data += raw
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data


def safetensors():
    a = small_arrays()
    put("safetensors", "f32.safetensors", safetensors_bytes({"W1": ("F32", a["W1"]), "b1": ("F32", a["b1"])}, {"activation": "relu"}))
    put("safetensors", "types.safetensors", safetensors_bytes({
        "d": ("F64", np.array([1.0, 2.0])), "h": ("F16", a["h"]),
        "bf": ("BF16", np.array([0x3F80, 0xC000], dtype=np.uint16)),
        "i": ("I32", np.array([-1, 7], dtype=np.int32)), "u": ("U8", a["u8"]), "t": ("BOOL", np.array([1, 0], dtype=np.uint8)),
        "e": ("F32", np.zeros((0, 2), dtype=np.float32)), "s": ("F32", np.array(1.0, dtype=np.float32))}))
    put("safetensors", "empty.safetensors", safetensors_bytes({}))
    shutil.copy(os.path.join(FIXTURES, "tensors.safetensors"), os.path.join(OUT, "safetensors", "fixture.safetensors"))


def idx_bytes(arr):
    arr = np.asarray(arr, dtype=np.uint8)
    return bytes([0, 0, 8, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape) + arr.tobytes()


def idxs():
    imgs = (np.arange(2 * 3 * 4) * 10 % 256).reshape(2, 3, 4)
    labels = np.array([3, 9], dtype=np.uint8)
    put("idx", "images.idx3", idx_bytes(imgs))
    put("idx", "labels.idx1", idx_bytes(labels))
    put("idx", "images.idx3.gz", gzip.compress(idx_bytes(imgs), mtime=0))
    put("idx", "labels.idx1.gz", gzip.compress(idx_bytes(labels), mtime=0))
    put("idx", "rank2.idx2", idx_bytes(np.ones((2, 2))))
    put("idx", "empty.idx1", idx_bytes(np.zeros((0,))))
    for name in ("tiny-images.idx3.gz", "tiny-labels.idx1"):
        shutil.copy(os.path.join(FIXTURES, name), os.path.join(OUT, "idx", name))


def gzips():
    put("gzip", "text.gz", gzip.compress(b"hello hello hello\n" * 20, mtime=0))
    put("gzip", "zeros.gz", gzip.compress(bytes(100000), mtime=0))
    put("gzip", "two_members.gz", gzip.compress(b"first", mtime=0) + gzip.compress(b"second", mtime=0))
    put("gzip", "padded.gz", gzip.compress(b"pad", mtime=0) + bytes(8))
    put("gzip", "stored.gz", gzip.compress(bytes(range(256)), compresslevel=0, mtime=0))
    put("gzip", "plain.bin", b"not gzip")
    put("gzip", "idx.gz", gzip.compress(idx_bytes(np.arange(12).reshape(3, 4)), mtime=0))


def weights():
    d = os.path.join(OUT, "weights")
    os.makedirs(d, exist_ok=True)
    for target, name in (("pickle", "p4.pkl"), ("npy", "W1.npy"), ("npz", "deflated.npz"), ("safetensors", "f32.safetensors")):
        shutil.copy(os.path.join(OUT, target, name), os.path.join(d, name))
        with open(os.path.join(OUT, target, name), "rb") as f:
            put("weights", name + ".gz", gzip.compress(f.read(), mtime=0))


if __name__ == "__main__":
    shutil.rmtree(OUT, ignore_errors=True)
    pickles(); npys(); npzs(); safetensors(); idxs(); gzips(); weights()
    total = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(OUT) for f in fs)
    print(f"wrote {sum(len(fs) for _, _, fs in os.walk(OUT))} files, {total} bytes, to {OUT}")
