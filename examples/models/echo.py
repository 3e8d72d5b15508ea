"""echo: a oneshot model that returns its request. Stdlib only."""
import json
import sys

request = json.loads(sys.stdin.readline() or "{}")
print(f"echo: got input {json.dumps(request.get('input'))}", file=sys.stderr)
print(json.dumps({"echo": request}))
