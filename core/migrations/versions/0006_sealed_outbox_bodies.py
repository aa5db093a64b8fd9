"""outbox bodies sealed at rest

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 12:00:00.000000

A message's body holds its link, token included, until it is sent. From this revision it
is stored sealed (AES-256-GCM under a key derived from SECRET_KEY, `aesgcm$1$…`, bound to
the row's Message-ID); `body` is TEXT already, so the column itself is unchanged. Bodies
written before, in the clear, are sealed here, so they are still delivered and none stays
readable.
"""

from alembic import context, op
import sqlalchemy as sa

from core.keys import SEALED_PREFIX


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

SELECT = sa.text("SELECT id, message_id, body FROM outbox WHERE body IS NOT NULL")
UPDATE = sa.text("UPDATE outbox SET body = :body WHERE id = :id")


def upgrade() -> None:
    bind = op.get_bind()
    clear = [row for row in bind.execute(SELECT) if not row.body.startswith(SEALED_PREFIX)]
    if clear:
        keys = context.config.attributes["keys"]()
        for row in clear:
            body = keys.seal_mail(row.body, message_id=row.message_id)
            bind.execute(UPDATE, {"id": row.id, "body": body})


def downgrade() -> None:
    # The code of 0005 reads bodies in the clear.
    bind = op.get_bind()
    sealed = [row for row in bind.execute(SELECT) if row.body.startswith(SEALED_PREFIX)]
    if sealed:
        keys = context.config.attributes["keys"]()
        for row in sealed:
            body = keys.unseal_mail(row.body, message_id=row.message_id)
            bind.execute(UPDATE, {"id": row.id, "body": body})
