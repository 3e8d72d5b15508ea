"""linear: a oneshot model, y = w . x + bias, with weight vector `w` and parameter `bias`."""
import json
import sys

request = json.loads(sys.stdin.readline() or "{}")
w = request.get("weights", {}).get("w", [])
bias = float(request.get("parameters", {}).get("bias", 0.0))
x = (request.get("input") or {}).get("x", [])
if len(x) != len(w):
    print(f"linear: input x has {len(x)} values but w has {len(w)}", file=sys.stderr)
    sys.exit(2)
y = sum(wi * xi for wi, xi in zip(w, x)) + bias
print(json.dumps({"y": y}))
