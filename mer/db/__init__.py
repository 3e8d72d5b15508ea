"""The DAL: SQLAlchemy models, engine and sessions, repositories, catalog loading.

Knows nothing of the shell or of executors. Only mer/db/interfaces.py is imported by the
layers above at start-up; the SQLAlchemy modules are imported lazily by bootstrap.
"""
