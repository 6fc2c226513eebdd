#!/usr/bin/env python3
# Writes the decompression bombs used by Tests/ScratchNetIOTests/HostileFilesTests.swift into Tests/Fuzz/bombs/:
#   zeros16m.gz      16 MiB of zero bytes, gzip (16 KB on disk): more than any small limit
#   idx_bomb.idx3.gz an IDX header declaring 1 image of 28x28, followed by 16 MiB of zeros (the header lies)
#   idx_huge.idx3.gz an IDX header declaring 65536 x 65536 x 1 bytes (4 GiB > IDX.maxSize), and 16 bytes of data
# Run: python3 Tests/Fuzz/make_bombs.py
import gzip
import os
import struct

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bombs")
os.makedirs(HERE, exist_ok=True)
MB16 = bytes(16 << 20)


def put(name, data):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(gzip.compress(data, compresslevel=9, mtime=0))


put("zeros16m.gz", MB16)
put("idx_bomb.idx3.gz", bytes([0, 0, 8, 3]) + struct.pack(">III", 1, 28, 28) + MB16)
put("idx_huge.idx3.gz", bytes([0, 0, 8, 3]) + struct.pack(">III", 65536, 65536, 1) + bytes(16))
