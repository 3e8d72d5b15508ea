"""linear as a worker (JSON lines framing): load once, then answer one request a line."""
import json
import sys

print("linear-worker: loading", flush=True)
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    request = json.loads(line)
    if request.get("exit"):
        break
    w = request.get("weights", {}).get("w", [])
    bias = float(request.get("parameters", {}).get("bias", 0.0))
    x = (request.get("input") or {}).get("x", [])
    if len(x) != len(w):
        answer = {"id": request["id"], "error": f"input x has {len(x)} values but w has {len(w)}"}
    else:
        answer = {"id": request["id"], "result": {"y": sum(a * b for a, b in zip(w, x)) + bias}}
    print(json.dumps(answer), flush=True)
