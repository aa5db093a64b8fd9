"""throttle events and devices

Every rate limit counts in one table, keyed by a keyed hash (the failed-login table stored
what was typed in the login field); devices are the browsers bound to an account by the
`device_id` cookie.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 10:00:00.000000
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index(op.f('ix_login_failures_at'), table_name='login_failures')
    op.drop_index('ix_login_failures_client_at', table_name='login_failures')
    op.drop_index('ix_login_failures_account_at', table_name='login_failures')
    op.drop_table('login_failures')
    op.create_table('throttle_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('at', sa.Float(), nullable=False),
    sa.Column('expires_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_throttle_events_key_at', 'throttle_events', ['key', 'at'], unique=False)
    op.create_index(op.f('ix_throttle_events_expires_at'), 'throttle_events', ['expires_at'], unique=False)
    op.create_table('devices',
    sa.Column('token_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('expires_at', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('token_hash')
    )
    op.create_index(op.f('ix_devices_expires_at'), 'devices', ['expires_at'], unique=False)
    op.create_index(op.f('ix_devices_user_id'), 'devices', ['user_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_devices_user_id'), table_name='devices')
    op.drop_index(op.f('ix_devices_expires_at'), table_name='devices')
    op.drop_table('devices')
    op.drop_index(op.f('ix_throttle_events_expires_at'), table_name='throttle_events')
    op.drop_index('ix_throttle_events_key_at', table_name='throttle_events')
    op.drop_table('throttle_events')
    op.create_table('login_failures',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('client', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_login_failures_account_at', 'login_failures', ['account', 'at'], unique=False)
    op.create_index('ix_login_failures_client_at', 'login_failures', ['client', 'at'], unique=False)
    op.create_index(op.f('ix_login_failures_at'), 'login_failures', ['at'], unique=False)
