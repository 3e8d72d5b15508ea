"""containers: a container model's image, limits and network; a container server's
engine; a run's artifacts (the files its model left in /data/output)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

MODEL_COLUMNS = (
    ('image', sa.String(length=500)),
    ('cpus', sa.Float()),
    ('memory', sa.String(length=50)),
    ('network', sa.String(length=20)),
)


# NOTE: plain ALTER TABLE, not batch mode: SQLite (3.35+) adds and drops these columns in
# place, while a batch copy of `servers` or `models` would lose their catalog triggers
# (migration 0002) and trip the foreign keys that point at them.
COLUMNS = (
    *(('models', name, type_) for name, type_ in MODEL_COLUMNS),
    ('servers', 'engine', sa.String(length=20)),
    ('access_log', 'artifacts',
     sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')),
)


def upgrade() -> None:
    for table, name, type_ in COLUMNS:
        op.add_column(table, sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    for table, name, _ in reversed(COLUMNS):
        op.drop_column(table, name)
