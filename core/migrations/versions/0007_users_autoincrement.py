"""users.id never reused on SQLite (AUTOINCREMENT)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 12:05:00.000000

Without AUTOINCREMENT, SQLite gives a new row the highest id in use plus one, so the id of
the newest account, once deleted, goes to the next sign-up, and whatever is still keyed by
that id (rate-limit counts, device cookies, anything a later change keys by user id) would
belong to a stranger. PostgreSQL's sequences never hand out an id twice: nothing to do.

SQLite cannot add AUTOINCREMENT in place: batch mode copies the table (foreign keys are
off while migrations run, see core.db.Database.migrate, so dropping the old copy deletes
no row that refers to it; they are checked before the commit).
"""

from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != 'sqlite':
        return
    with op.batch_alter_table(
        'users', recreate='always', table_kwargs={'sqlite_autoincrement': True}
    ):
        pass


def downgrade() -> None:
    # AUTOINCREMENT is kept: the older code reads and writes the table alike.
    pass
