"""catalog generation: a counter that every catalog change bumps, kept by triggers

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""
from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

# The tables whose rows a run reads: a change to any of them may change a run.
CATALOG = ("servers", "models", "model_parameters", "weight_revisions")
BUMP = "UPDATE catalog_state SET generation = generation + 1 WHERE id = 1"


def upgrade() -> None:
    op.create_table('catalog_state',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('generation', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_catalog_state'))
    )
    op.execute("INSERT INTO catalog_state (id, generation) VALUES (1, 0)")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"CREATE FUNCTION mer_bump_catalog() RETURNS trigger LANGUAGE plpgsql AS "
                   f"$$ BEGIN {BUMP}; RETURN NULL; END $$")
        for table in CATALOG:
            op.execute(f"CREATE TRIGGER bump_catalog AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
                       f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION mer_bump_catalog()")
    else:
        for table in CATALOG:
            for event in ("INSERT", "UPDATE", "DELETE"):
                op.execute(f"CREATE TRIGGER bump_catalog_{table}_{event.lower()} AFTER {event} "
                           f"ON {table} BEGIN {BUMP}; END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in CATALOG:
            op.execute(f"DROP TRIGGER bump_catalog ON {table}")
        op.execute("DROP FUNCTION mer_bump_catalog()")
    else:
        for table in CATALOG:
            for event in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER bump_catalog_{table}_{event}")
    op.drop_table('catalog_state')
