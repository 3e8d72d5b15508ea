"""run log indexes: the access log's listings answer from an index at any size

``runs --model M`` and ``runs --status S --since T`` list the newest rows first, a page
at a time (``--before ID``: the rows after run ID in the order started_at desc, id desc).
An index on (model, started_at, id) or (status, started_at, id) hands those rows over in
that order, so a page costs the same with a thousand rows or a million; the single-column
indexes on model and status are prefixes of these and go, and started_at gets the id as
its tie-breaker. So a run's insert maintains as many indexes as before.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""
from __future__ import annotations

from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

# (old single-column index, its column) -> the composite index that replaces it.
REPLACED = (
    ('ix_access_log_model', 'model', 'ix_access_log_model_started_at'),
    ('ix_access_log_status', 'status', 'ix_access_log_status_started_at'),
    ('ix_access_log_started_at', None, 'ix_access_log_started_at_id'),
)


def upgrade() -> None:
    for old, column, new in REPLACED:
        op.create_index(new, 'access_log', [c for c in (column, 'started_at', 'id') if c])
        op.drop_index(old, table_name='access_log')


def downgrade() -> None:
    for old, column, new in reversed(REPLACED):
        op.create_index(old, 'access_log', [column or 'started_at'])
        op.drop_index(new, table_name='access_log')
