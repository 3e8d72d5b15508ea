"""lineage: what a run needs beyond one machine and for its lifecycle

- access_log: the Slurm job id of a run, the batch it belongs to, its parent run (a
  pipeline step's pipeline run), the alias it was called by, and a snapshot of all that
  makes it reproducible (config, parameters, weight sha256s, request, mer's version).
- servers: a Slurm server's partition, account and extra sbatch/srun arguments.
- model_aliases: ``m@live`` names one version of ``m``; a catalog table (its changes bump
  the catalog generation, so a shell's cached resolution follows a moved alias).
- pipelines: an ordered list of steps, each a model reference and an optional mapping.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
BUMP = "UPDATE catalog_state SET generation = generation + 1 WHERE id = 1"

# Plain ALTER TABLE, not batch mode (see 0005): a batch copy would lose the triggers.
COLUMNS = (
    ('access_log', 'job_id', sa.String(length=100)),
    ('access_log', 'batch_id', sa.Uuid()),
    ('access_log', 'parent_id', sa.Uuid()),
    ('access_log', 'alias', sa.String(length=50)),
    ('access_log', 'snapshot', JSON_DOC),
    ('servers', 'partition', sa.String(length=100)),
    ('servers', 'account', sa.String(length=100)),
    ('servers', 'slurm_args', sa.Text()),
)


def upgrade() -> None:
    for table, name, type_ in COLUMNS:
        op.add_column(table, sa.Column(name, type_, nullable=True))
    # Partial: most runs are of no batch and no pipeline, and cost these indexes nothing.
    for column in ('batch_id', 'parent_id'):
        op.create_index(op.f(f'ix_access_log_{column}'), 'access_log', [column],
                        sqlite_where=sa.text(f'{column} IS NOT NULL'),
                        postgresql_where=sa.text(f'{column} IS NOT NULL'))
    op.create_table('model_aliases',
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('alias', sa.String(length=50), nullable=False),
    sa.Column('version', sa.String(length=50), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', 'alias', name=op.f('pk_model_aliases'))
    )
    op.create_table('pipelines',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('steps', JSON_DOC, nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('row_version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pipelines')),
    sa.UniqueConstraint('name', name=op.f('uq_pipelines_name'))
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE TRIGGER bump_catalog AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
                   "ON model_aliases FOR EACH STATEMENT EXECUTE FUNCTION mer_bump_catalog()")
    else:
        for event in ("INSERT", "UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER bump_catalog_model_aliases_{event.lower()} AFTER {event} "
                       f"ON model_aliases BEGIN {BUMP}; END")


def downgrade() -> None:
    op.drop_table('pipelines')
    op.drop_table('model_aliases')  # its triggers go with it
    op.drop_index(op.f('ix_access_log_parent_id'), table_name='access_log')
    op.drop_index(op.f('ix_access_log_batch_id'), table_name='access_log')
    for table, name, _ in reversed(COLUMNS):
        op.drop_column(table, name)
