"""Use cases: list/show/run/edit/weights/logs, the allow-edit policy, access logging and
validation. Knows repositories and executors only through their interfaces; never prints.
"""
