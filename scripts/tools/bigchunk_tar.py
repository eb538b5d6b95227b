#!/usr/bin/env python3
# A layer tar of FILES files of SIZE bytes each, every file one byte value repeated (distinct per
# file, so no two chunks are the same), for the benchmark's 1 GiB-chunk row (made at bench time,
# never committed). Usage: bigchunk_tar.py OUT.tar FILES SIZE
import sys

def header(name, size):
    h = bytearray(512)
    h[0:len(name)] = name
    h[100:108] = b"0000644\0"
    h[108:116] = b"0000000\0"
    h[116:124] = b"0000000\0"
    h[124:136] = b"%011o\0" % size
    h[136:148] = b"00000000000\0"
    h[148:156] = b"        "
    h[156:157] = b"0"
    h[257:265] = b"ustar\x0000"
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)

out, files, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
block = 1 << 20
with open(out, "wb") as f:
    for i in range(files):
        f.write(header(b"big%d" % i, size))
        buf = bytes([i + 1]) * block
        left = size
        while left > 0:
            n = min(left, block)
            f.write(buf if n == block else buf[:n])
            left -= n
        if size % 512:
            f.write(b"\0" * (512 - size % 512))
    f.write(b"\0" * 1024)
