"""weight run: the training run whose result a weight revision is (`train --save`)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""
from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NOTE: a plain ADD COLUMN on both dialects. A batch "move and copy" on SQLite would
    # drop the catalog-generation triggers on this table (migration 0002).
    op.add_column('weight_revisions', sa.Column('run_id', sa.Uuid(), nullable=True))


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        # SQLite (3.35+) drops a column that no index or constraint uses in place; the
        # batch copy would lose the triggers, as above.
        op.execute('ALTER TABLE weight_revisions DROP COLUMN run_id')
    else:
        op.drop_column('weight_revisions', 'run_id')
