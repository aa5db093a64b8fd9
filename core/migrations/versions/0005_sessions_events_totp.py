"""sessions you can see, the security log, TOTP

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 08:40:00.000000
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Sessions get a public id and the user agent and address they started from. Sessions
    # started before keep working: each gets a random id of its own here.
    op.add_column('sessions', sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True))
    op.add_column('sessions', sa.Column('user_agent', sqlmodel.sql.sqltypes.AutoString(length=256), server_default='', nullable=False))
    op.add_column('sessions', sa.Column('ip_address', sqlmodel.sql.sqltypes.AutoString(length=64), server_default='', nullable=False))
    if op.get_bind().dialect.name == 'sqlite':
        op.execute("UPDATE sessions SET id = lower(hex(randomblob(16)))")
    else:
        op.execute("UPDATE sessions SET id = replace(gen_random_uuid()::text, '-', '')")
    # SQLite cannot change a column's nullability in place: batch mode copies the table.
    with op.batch_alter_table('sessions') as batch:
        batch.alter_column('id', existing_type=sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False)
    op.create_index(op.f('ix_sessions_id'), 'sessions', ['id'], unique=True)

    op.create_table('security_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('at', sa.Float(), nullable=False),
    sa.Column('ip_address', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('user_agent', sqlmodel.sql.sqltypes.AutoString(length=256), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_security_events_user_id_at', 'security_events', ['user_id', 'at'], unique=False)
    op.create_index(op.f('ix_security_events_at'), 'security_events', ['at'], unique=False)
    op.create_table('totp_secrets',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('secret', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('enabled_at', sa.Float(), nullable=True),
    sa.Column('last_step', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id')
    )
    op.create_table('recovery_codes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('digest', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_recovery_codes_user_id_digest', 'recovery_codes', ['user_id', 'digest'], unique=True)


def downgrade() -> None:
    op.drop_index('ix_recovery_codes_user_id_digest', table_name='recovery_codes')
    op.drop_table('recovery_codes')
    op.drop_table('totp_secrets')
    op.drop_index(op.f('ix_security_events_at'), table_name='security_events')
    op.drop_index('ix_security_events_user_id_at', table_name='security_events')
    op.drop_table('security_events')
    op.drop_index(op.f('ix_sessions_id'), table_name='sessions')
    with op.batch_alter_table('sessions') as batch:
        batch.drop_column('ip_address')
        batch.drop_column('user_agent')
        batch.drop_column('id')
