"""noisy: writes input.mb megabytes (default 50) to stdout and to stderr, interleaved,
without reading stdin."""
import os
import sys

mb = 50.0
if len(sys.argv) > 1:
    mb = float(sys.argv[1])
block = (b"x" * 1023 + b"\n") * 64  # 64 KiB
for _ in range(int(mb * 16)):
    os.write(1, block)
    os.write(2, block)
