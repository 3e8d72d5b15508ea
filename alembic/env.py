"""`alembic ...` from the repository root runs mer's own migration environment.

The migrations ship inside the package (mer/db/migrations: env.py and versions/), so an
installed mer needs no source tree; alembic.ini points version_locations there, and this
file runs that directory's env.py, so both ways migrate alike.
"""

from __future__ import annotations

import runpy
from pathlib import Path

import mer.db

runpy.run_path(str(Path(mer.db.__file__).parent / "migrations" / "env.py"))
