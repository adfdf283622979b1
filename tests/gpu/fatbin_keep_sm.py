"""Zero the GPU code for other GPUs in a CUDA shared library, so that it compresses small.

``python3 tests/gpu/fatbin_keep_sm.py SRC.so DST.so SM`` (e.g. ``libonnxruntime_providers_cuda.so
cuda90.so 90``) copies SRC to DST with the payload of every entry of its ``.nv_fatbin`` section
zeroed except the ELF cubins built for compute capability SM; PTX and the entry and container
headers (``0xBA55ED50`` fatbin containers) stay as they are, and so does everything outside that
section. On a GPU of that SM the driver takes those cubins, so DST behaves as SRC there as long
as every kernel has a cubin for it (a kernel shipped only as PTX would be lost: the ONNX Runtime
1.31.1 CUDA provider has no PTX entries). Exits 1 when SRC has no `.nv_fatbin` section or no
cubin for SM.

Only for moving a library to a machine that takes few bytes per transfer (the 64 MiB of the lent
GPU machine; README "Jetson deployment"): ONNX Runtime 1.31.1's CUDA provider is 284 MB, 208 MB
of it GPU code for 7 architectures; zeroed to sm_90 it compresses to 52 MB with xz.
"""
import struct
import subprocess
import sys

src, dst, keep = sys.argv[1], sys.argv[2], int(sys.argv[3])
data = bytearray(open(src,'rb').read())
off = None
for line in subprocess.check_output(['readelf','-S','-W',src]).decode().splitlines():
    if '.nv_fatbin ' in line:
        parts = line.split(']')[1].split()
        off, size = int(parts[3], 16), int(parts[4], 16)
if off is None:
    sys.exit(f"{src}: no .nv_fatbin section")
pos, end = off, off + size
zeroed = kept = 0
flags_seen = {}
while pos < end:
    magic, ver, hsz, fsz = struct.unpack_from('<IHHQ', data, pos)
    if magic != 0xBA55ED50:
        pos += 8
        continue
    e, cend = pos + hsz, pos + hsz + fsz
    while e < cend:
        kind, _u, ehs, psz = struct.unpack_from('<HHIQ', data, e)
        arch = struct.unpack_from('<I', data, e+28)[0]
        flags = struct.unpack_from('<Q', data, e+40)[0]
        if arch == keep and kind == 2:  # kind 1 = PTX, 2 = ELF cubin
            kept += psz
            flags_seen[flags] = flags_seen.get(flags, 0) + 1
        else:
            data[e + ehs:e + ehs + psz] = bytes(psz)
            zeroed += psz
        e += ehs + psz
    pos = cend
if kept == 0:
    sys.exit(f"{src}: no sm_{keep} cubin; nothing written")
open(dst,'wb').write(data)
print('kept', kept>>20, 'MiB, zeroed', zeroed>>20, 'MiB, flags of kept', {hex(k):v for k,v in flags_seen.items()})
