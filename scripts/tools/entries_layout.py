#!/usr/bin/env python3
# An OCI image layout of one eStargz layer whose TOC has COUNT entries, for the benchmark's
# memory rows (made at bench time, never committed). Usage: entries_layout.py OUT_DIR COUNT
#
# Written here, not by esgz-ref: the reference converter keeps a temporary file open per tar
# entry, so it stops at the open-file limit (20000 on the bench machine), far below 3 M.
# The entries carry no data (a directory per 100 entries; fifos and symlinks in it, short
# names, mtime 0, root) — the smallest a TOC can hold, about 75 bytes of JSON each, so that
# 3 M stay within the 256 MiB TOC bound. The blob is what the eStargz spec asks for: the tar
# stream in gzip (all headers in one member: no file has data to point at), the TOC in its own
# member as the tar entry stargz.index.json, then the 51-byte footer.
import gzip, hashlib, io, json, os, struct, sys, zlib

def header(name, typ, size=0, link=b"", mode=0o644):
    h = bytearray(512)
    h[0:len(name)] = name
    h[100:108] = b"%07o\0" % mode
    h[108:116] = b"0000000\0"
    h[116:124] = b"0000000\0"
    h[124:136] = b"%011o\0" % size
    h[136:148] = b"00000000000\0"
    h[148:156] = b"        "
    h[156:157] = typ
    h[157:157 + len(link)] = link
    h[257:265] = b"ustar\x0000"
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)

def gz(data):
    c = zlib.compressobj(6, zlib.DEFLATED, 31)
    return c.compress(data) + c.flush()

def footer(toc_offset):
    extra = b"SG" + struct.pack("<H", 22) + (b"%016x" % toc_offset) + b"STARGZ"
    hdr = b"\x1f\x8b\x08\x04" + b"\0\0\0\0" + b"\0\xff" + struct.pack("<H", len(extra)) + extra
    return hdr + b"\x01\x00\x00\xff\xff" + b"\0" * 8  # an empty stored block, CRC and size 0

out, count = sys.argv[1], int(sys.argv[2])
tar = bytearray()
entries = []
n = d = 0
while n < count:
    dname = "d%d/" % d
    tar += header(dname.encode(), b"5", mode=0o755)
    entries.append({"name": dname, "type": "dir", "mode": 0o40755})
    n += 1
    for i in range(99):
        if n >= count:
            break
        if i % 5 == 4:
            name = "%ss%d" % (dname, i)
            tar += header(name.encode(), b"2", link=b"f0", mode=0o777)
            entries.append({"name": name, "type": "symlink", "linkName": "f0", "mode": 0o120777})
        else:
            name = "%sf%d" % (dname, i)
            tar += header(name.encode(), b"6")
            entries.append({"name": name, "type": "fifo", "mode": 0o10644})
        n += 1
    d += 1
body = gz(bytes(tar))
toc_json = json.dumps({"version": 1, "entries": entries}, indent="\t").encode()
del entries
toc_tar = header(b"stargz.index.json", b"0", size=len(toc_json)) + toc_json + b"\0" * ((512 - len(toc_json) % 512) % 512) + b"\0" * 1024
blob = body + gz(toc_tar) + footer(len(body))
# The uncompressed stream is the tar headers, then the TOC entry, then the end blocks.
raw = bytes(tar) + toc_tar
diff_id = "sha256:" + hashlib.sha256(raw).hexdigest()
del tar, raw

blobs = os.path.join(out, "blobs", "sha256")
os.makedirs(blobs, exist_ok=True)
def put(data):
    d = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, d), "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + d, "size": len(data)}
layer = put(blob)
config = put(json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [diff_id]}, "config": {}}).encode())
manifest = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
    "layers": [{
        "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **layer,
        "annotations": {"containerd.io/snapshot/stargz/toc.digest": "sha256:" + hashlib.sha256(toc_json).hexdigest()},
    }],
}
m = put(json.dumps(manifest).encode())
with open(os.path.join(out, "index.json"), "w") as f:
    json.dump({"schemaVersion": 2, "manifests": [{"mediaType": manifest["mediaType"], **m, "annotations": {"org.opencontainers.image.ref.name": "v1"}}]}, f)
with open(os.path.join(out, "oci-layout"), "w") as f:
    f.write('{"imageLayoutVersion":"1.0.0"}')
print("toc json bytes", len(toc_json), "blob bytes", len(blob))
