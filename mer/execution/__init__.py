"""The MEAL: executor interface, registry, local and ssh drivers.

Knows nothing of the database or the shell. paramiko is imported only by the ssh*.py
modules, and only when an ssh server is first used.
"""
