"""crash: fails on purpose with a message on stderr and exit status 3."""
import sys

print("crash: about to fail", flush=True)
print("Traceback (most recent call last):\n  ValueError: the model crashed on purpose", file=sys.stderr)
sys.exit(3)
