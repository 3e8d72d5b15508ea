"""slow: sleeps input.seconds (default 5), printing a tick each second."""
import json
import sys
import time

request = json.loads(sys.stdin.readline() or "{}")
seconds = float((request.get("input") or {}).get("seconds", 5))
end = time.monotonic() + seconds
tick = 0
while time.monotonic() < end:
    tick += 1
    print(f"tick {tick}", flush=True)
    time.sleep(min(1.0, max(0.0, end - time.monotonic())))
print(json.dumps({"slept": seconds}))
