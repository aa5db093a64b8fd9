"""persisted documents

Revision ID: 0005
Revises: 0001
Create Date: 2026-12-02 10:00:00.000000
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0005'
down_revision = '0001'
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
