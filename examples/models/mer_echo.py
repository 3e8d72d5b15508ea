"""mer-echo: a worker speaking the original Rust MER markers; answers in upper case.
The input "bad" is rejected with a message on stderr and no response."""
import sys

print("mer-echo: loading", flush=True)
print("@!#READY#!@", flush=True)
while True:
    line = sys.stdin.readline()
    if not line or line.strip() == "@!#EXIT#!@":
        break
    if line.strip() != "@!#START#!@":
        continue
    body = []
    for line in sys.stdin:
        if line.strip() == "@!#STOP#!@":
            break
        body.append(line.rstrip("\n"))
    text = "\n".join(body)
    if text.strip('"') == "bad":
        print("mer-echo: rejected input 'bad'", file=sys.stderr, flush=True)
        continue
    print("@!#START#!@")
    print(text.upper())
    print("@!#STOP#!@", flush=True)
