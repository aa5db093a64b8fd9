"""persisted documents

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 10:00:00.000000
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('persisted_documents',
    sa.Column('hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('document', sa.Text(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('last_used_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('hash')
    )
    op.create_index(op.f('ix_persisted_documents_last_used_at'), 'persisted_documents', ['last_used_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_persisted_documents_last_used_at'), table_name='persisted_documents')
    op.drop_table('persisted_documents')
