"""Fixtures that start a real OpenSSH sshd on a loopback port (filled in by the executor work)."""
