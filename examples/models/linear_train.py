"""linear training: fits w by a few gradient steps on input.samples [[x..., y], ...]."""
import json
import sys

request = json.loads(sys.stdin.readline() or "{}")
w = list(request.get("weights", {}).get("w", []))
bias = float(request.get("parameters", {}).get("bias", 0.0))
samples = (request.get("input") or {}).get("samples", [])
rate = float((request.get("input") or {}).get("rate", 0.01))
for epoch in range(1, 6):
    loss = 0.0
    for *x, y in samples:
        err = sum(wi * xi for wi, xi in zip(w, x)) + bias - y
        loss += err * err
        w = [wi - rate * err * xi for wi, xi in zip(w, x)]
    print(f"epoch {epoch}: loss {loss:.6f}", flush=True)
# The result holds the trained vectors under "weights": `train linear --save` stores them.
print(json.dumps({"weights": {"w": w}, "epochs": 5}))
