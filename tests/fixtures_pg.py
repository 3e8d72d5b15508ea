"""Fixtures for the real PostgreSQL server (filled in by the database work)."""
