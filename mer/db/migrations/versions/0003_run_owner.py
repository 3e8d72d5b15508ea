"""run owner: who runs a run while it runs, so that a row whose mer is gone can be found

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""
from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

COLUMNS = (
    ('owner_host', sa.String(length=255)),
    ('owner_pid', sa.Integer()),
    ('owner_start', sa.String(length=100)),
    ('process_group', sa.Integer()),
)


def upgrade() -> None:
    with op.batch_alter_table('access_log') as batch:
        for name, type_ in COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('access_log') as batch:
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
