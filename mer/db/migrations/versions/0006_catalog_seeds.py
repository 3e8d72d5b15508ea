"""catalog seeds: the catalog entries a catalog load has offered once, so that a later
load adds only what is missing and never brings back what an admin removed

Existing databases are backfilled with what they hold (every server, model, parameter
key and weight vector) and with what the audit log says an admin removed, so the first
load after this upgrade does not restore those either.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""
from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def _existing(bind: sa.Connection) -> set[tuple[str, str]]:
    # Typed columns, so that ids compare alike on both dialects (SQLite keeps them as text).
    servers = sa.table("servers", sa.column("name", sa.String()))
    models_t = sa.table("models", sa.column("id", sa.Uuid()), sa.column("name", sa.String()),
                        sa.column("version", sa.String()))
    weights = sa.table("weight_revisions", sa.column("model_id", sa.Uuid()),
                       sa.column("name", sa.String()))
    params = sa.table("model_parameters", sa.column("model_id", sa.Uuid()),
                      sa.column("document", sa.JSON()))
    seeds = {("server", name) for (name,) in bind.execute(sa.select(servers.c.name))}
    models = {mid: f"{name}@{version}" for mid, name, version in
              bind.execute(sa.select(models_t.c.id, models_t.c.name, models_t.c.version))}
    seeds |= {("model", ref) for ref in models.values()}
    for mid, name in bind.execute(sa.select(weights.c.model_id, weights.c.name).distinct()):
        if mid in models:
            seeds.add(("weights", f"{models[mid]}/{name}"))
    for mid, document in bind.execute(sa.select(params.c.model_id, params.c.document)):
        if mid in models and isinstance(document, dict):
            seeds |= {("param", f"{models[mid]}/{key}") for key in document}
    return seeds


def _removed(bind: sa.Connection) -> set[tuple[str, str]]:
    """What the audit log says an admin removed: targets are "server X", "model X@V",
    "weights X@V/NAME"; an unset parameter is "model X@V" with the key in ``before``."""
    audit = sa.table("audit_log", sa.column("action", sa.String()), sa.column("target", sa.String()),
                     sa.column("before", sa.JSON()))
    seeds: set[tuple[str, str]] = set()
    rows = bind.execute(sa.select(audit.c.action, audit.c.target, audit.c.before).where(
        audit.c.action.in_(["server.remove", "model.remove", "weights.remove", "param.unset"])))
    for action, target, before in rows:
        kind, _, key = target.partition(" ")
        if action == "param.unset" and kind == "model" and isinstance(before, dict):
            seeds |= {("param", f"{key}/{name}") for name in before}
        elif action.split(".")[0] == kind:
            seeds.add((kind, key))
    return seeds


def upgrade() -> None:
    seeds = op.create_table('catalog_seeds',
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('key', sa.Text(), nullable=False),
    sa.Column('seeded_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('kind', 'key', name=op.f('pk_catalog_seeds'))
    )
    bind = op.get_bind()
    now = datetime.now(UTC)
    found = _existing(bind) | _removed(bind)
    if found:
        op.bulk_insert(seeds, [{"kind": k, "key": key, "seeded_at": now} for k, key in sorted(found)])


def downgrade() -> None:
    op.drop_table('catalog_seeds')
