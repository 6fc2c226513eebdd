#!/usr/bin/env python3
# Generates the tiny test fixtures for ScratchNetIOTests (pickle protocols 2-5 in NumPy 1.x and 2.x style,
# hostile pickles, .npy v1/v2/v3, .npz stored/deflated, safetensors, IDX raw/gzip).
# Needs python3 + numpy (written with NumPy 2.4). Run from anywhere:  python3 make_fixtures.py
# The Swift tests rebuild the same arrays from the formulas below (see FixtureArrays in the tests).
import gzip
import io
import json
import os
import pickle
import struct
import sys
import types
import zipfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
# The command the hostile pickles would run if an unpickler executed them; the tests assert the file never appears.
PWNED = "/tmp/scratchnet-io-test-pwned"


def arrays():
    """The arrays every 'good' fixture holds. Keep in sync with FixtureArrays.swift."""
    # (3,5) float32, C order: v[i,j] = i*5 + j - 7.5, with NaN at [0,1], +inf at [1,2], -inf at [2,3]
    c = (np.arange(15, dtype=np.float32).reshape(3, 5) - np.float32(7.5))
    c[0, 1] = np.nan
    c[1, 2] = np.inf
    c[2, 3] = -np.inf
    # (7,4) float32 stored in Fortran order: v[i,j] = i*0.25 - j*3
    f = np.asfortranarray(np.fromfunction(lambda i, j: i * 0.25 - j * 3, (7, 4), dtype=np.float32))
    # (2,3,4) float32 Fortran order: v[i,j,k] = i*100 + j*10 + k
    f3 = np.asfortranarray(np.fromfunction(lambda i, j, k: i * 100 + j * 10 + k, (2, 3, 4), dtype=np.float32))
    # (5,) float64: values that round when narrowed to float32, one that overflows, one that underflows
    d = np.array([0.1, -2.5, 1e40, 1e-50, 3.141592653589793], dtype=np.float64)
    # (2,3) big-endian float32 and (3,) big-endian float64
    be = (np.arange(6, dtype=np.float32).reshape(2, 3) * np.float32(-1.5)).astype('>f4')
    be8 = np.array([1.0, -0.0, 2.0 ** -30], dtype='>f8')
    # (1,) and empty (0,) float32 and an empty (0,3) matrix
    one = np.array([42.0], dtype=np.float32)
    empty = np.zeros((0,), dtype=np.float32)
    empty2 = np.zeros((0, 3), dtype=np.float32)
    # (33,) float32 Fortran-ordered 2-D (33,1) column
    col = np.asfortranarray(np.arange(33, dtype=np.float32).reshape(33, 1) / np.float32(8))
    # uint8 (4,) (like the book's MNIST pickle), int64 (3,)
    u8 = np.array([0, 1, 128, 255], dtype=np.uint8)
    i8 = np.array([-3, 0, 1 << 40], dtype=np.int64)
    return dict(c=c, f=f, f3=f3, d=d, be=be, be8=be8, one=one, empty=empty, empty2=empty2, col=col, u8=u8, i8=i8)


def payload():
    """A dict like the book's file, plus plain containers that must be accepted (and ignored)."""
    p = dict(arrays())
    p["meta"] = {"name": "fixture", "layers": [784, 50, 100, 10], "lr": 0.1, "ok": True, "none": None,
                 "pair": (1, "two"), "blob": b"\x00\xff", "big": 1 << 70, "neg": -123456789}
    p["count"] = 3
    p["scalar"] = np.float32(2.5)  # a NumPy scalar: 0-d array
    return p


class RenamingPickler(pickle._Pickler):
    """The pure-Python pickler, but writing NumPy globals under NumPy 1.x module names (numpy.core.*)
    when style == 1, so fixtures of both styles can be made with one NumPy installed."""

    def __init__(self, file, protocol, style):
        super().__init__(file, protocol)
        self.style = style

    def save_global(self, obj, name=None):
        if name is None:
            name = getattr(obj, "__qualname__", None) or obj.__name__
        module = pickle.whichmodule(obj, name)
        if module.startswith("numpy._core") and self.style == 1:
            module = "numpy.core" + module[len("numpy._core"):]
        if self.proto >= 4:
            self.save(module)
            self.save(name)
            self.write(pickle.STACK_GLOBAL)
        else:
            if self.proto == 2 and module == "builtins":
                module = "__builtin__"
            self.write(pickle.GLOBAL + module.encode() + b"\n" + name.encode() + b"\n")
        self.memoize(obj)

    def save_picklebuffer(self, obj):
        # In-band PickleBuffer as the C pickler writes it (BYTEARRAY8 for writable buffers, BINBYTES otherwise);
        # Python 3.11's pure-Python version trips over its own memo assertion here.
        with obj.raw() as m:
            data, readonly = m.tobytes(), m.readonly
        if readonly:
            self.save_bytes(data)
        else:
            self.write(pickle.BYTEARRAY8 + struct.pack("<Q", len(data)) + data)
            self.memoize(obj)

    dispatch = pickle._Pickler.dispatch.copy()
    dispatch[pickle.PickleBuffer] = save_picklebuffer
    dispatch[types.FunctionType] = save_global  # Python functions (numeric._frombuffer) and classes
    dispatch[type] = save_global


def dump(obj, protocol, style):
    buf = io.BytesIO()
    RenamingPickler(buf, protocol, style).dump(obj)
    return buf.getvalue()


def write(name, data):
    with open(os.path.join(HERE, name), "wb") as fh:
        fh.write(data)


def pickles():
    for protocol in (2, 3, 4, 5):
        for style in (1, 2):
            data = dump(payload(), protocol, style)
            # Self-check: the stock unpickler reads it back (numpy.core.* still resolves in NumPy 2).
            back = pickle.loads(data)
            for k, v in arrays().items():
                assert np.array_equal(back[k], v, equal_nan=True), (protocol, style, k)
                assert (back[k].dtype.kind, back[k].dtype.itemsize) == (v.dtype.kind, v.dtype.itemsize)
            write(f"p{protocol}_np{style}.pkl", data)
    # Object arrays are refused (they would need arbitrary Python objects).
    write("object_array.pkl", pickle.dumps({"o": np.array([1, "a"], dtype=object)}, protocol=3))
    # A list at the top level: arrays under integer positions are not returned, but it must load.
    write("toplevel_list.pkl", pickle.dumps([np.ones(2, np.float32)], protocol=2))


def hostile():
    cmd = f"touch {PWNED}".encode()
    # protocol 2, GLOBAL 'os system' (what a hand-written exploit uses)
    write("hostile_os_system.pkl",
          b"\x80\x02" + b"cos\nsystem\n" + b"X" + struct.pack("<I", len(cmd)) + cmd + b"\x85R.")
    # protocol 4, STACK_GLOBAL builtins.eval, with FRAME and MEMOIZE
    expr = f"__import__('os').system('touch {PWNED}')".encode()
    body = (b"\x8c\x08builtins\x94\x8c\x04eval\x94\x93\x94" + b"\x8c" + bytes([len(expr)]) + expr + b"\x94\x85\x94R\x94.")
    write("hostile_builtins_eval.pkl", b"\x80\x04\x95" + struct.pack("<Q", len(body)) + body)
    # protocol 3, subprocess.Popen hidden as a value in an otherwise valid weights dict
    good = pickle.dumps({"W1": np.ones((2, 2), np.float32)}, protocol=3)
    assert good.endswith(b".")
    popen = (b"X\x04\x00\x00\x00evil" + b"csubprocess\nPopen\n" + b"(X\x05\x00\x00\x00touchX" +
             struct.pack("<I", len(PWNED)) + PWNED.encode() + b"l\x85R")
    write("hostile_subprocess_popen.pkl", good[:-1] + popen + b"s.")
    # A NumPy global that is not on the allow-list
    write("hostile_numpy_other.pkl", b"\x80\x02cnumpy.ctypeslib\nload_library\nX\x01\x00\x00\x00xX\x01\x00\x00\x00y\x86R.")
    # _reconstruct asked to build something other than an ndarray
    write("hostile_reconstruct_dtype.pkl",
          b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\ndtype\nK\x00\x85C\x01b\x87R.")


def npy_files():
    a = arrays()
    for name, ver in (("v1", (1, 0)), ("v2", (2, 0)), ("v3", (3, 0))):
        buf = io.BytesIO()
        np.lib.format.write_array(buf, a["c"], version=ver)
        write(f"c_{name}.npy", buf.getvalue())
    np.save(os.path.join(HERE, "f_fortran.npy"), a["f"])
    np.save(os.path.join(HERE, "f3_fortran.npy"), a["f3"])
    np.save(os.path.join(HERE, "d_f64.npy"), a["d"])
    np.save(os.path.join(HERE, "be_f4.npy"), a["be"])
    np.save(os.path.join(HERE, "empty2.npy"), a["empty2"])
    np.save(os.path.join(HERE, "scalar0d.npy"), np.array(1.5, dtype=np.float32))
    np.save(os.path.join(HERE, "object.npy"), np.array([1, "a"], dtype=object), allow_pickle=True)
    small = {k: a[k] for k in ("c", "f", "d", "be", "one", "empty")}
    np.savez(os.path.join(HERE, "stored.npz"), **small)
    np.savez_compressed(os.path.join(HERE, "deflated.npz"), **small)
    for fn in ("stored.npz", "deflated.npz"):
        with zipfile.ZipFile(os.path.join(HERE, fn)) as z:
            methods = {i.compress_type for i in z.infolist()}
            assert methods == ({zipfile.ZIP_STORED} if fn == "stored.npz" else {zipfile.ZIP_DEFLATED}), methods


def safetensors():
    """Written by hand from the format description (no safetensors package needed)."""
    a = arrays()
    tensors = [("c", "F32", a["c"].astype("<f4")), ("d", "F64", a["d"].astype("<f8")),
               ("f", "F32", np.ascontiguousarray(a["f"]).astype("<f4")), ("one", "F32", a["one"]),
               ("empty", "F32", a["empty"])]
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name, dt, arr in tensors:
        raw = np.ascontiguousarray(arr).tobytes()
        header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    write("tensors.safetensors", struct.pack("<Q", len(h)) + h + b"".join(blobs))


def idx():
    # 3 images of 2x4 pixels: v = (img*8 + pixel) * 10 % 256 ; labels 7, 0, 9
    imgs = np.array([(i * 8 + p) * 10 % 256 for i in range(3) for p in range(8)], dtype=np.uint8)
    img_bytes = struct.pack(">IIII", 0x803, 3, 2, 4) + imgs.tobytes()
    lab_bytes = struct.pack(">II", 0x801, 3) + bytes([7, 0, 9])
    write("tiny-images.idx3", img_bytes)
    write("tiny-labels.idx1", lab_bytes)
    write("tiny-images.idx3.gz", gzip.compress(img_bytes, mtime=0))
    write("tiny-labels.idx1.gz", gzip.compress(lab_bytes, mtime=0))


if __name__ == "__main__":
    print("numpy", np.__version__, "python", sys.version.split()[0])
    pickles()
    hostile()
    npy_files()
    safetensors()
    idx()
    print("fixtures written to", HERE)
