"""history import marks: when a shop's history backfill started and when it finished

Revision ID: 0005_history_import
Revises: 0004_admin_rollups
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.models.base import UTCDateTime

revision: str = "0005_history_import"
down_revision: str | None = "0004_admin_rollups"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("shops") as batch:
        batch.add_column(sa.Column("history_import_started_at", UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("history_imported_at", UTCDateTime(timezone=True), nullable=True))
    # Shops installed before this column existed had their import job sent at install;
    # count them as imported rather than start every shop's backfill again on upgrade.
    op.execute("UPDATE shops SET history_imported_at = installed_at")


def downgrade() -> None:
    with op.batch_alter_table("shops") as batch:
        batch.drop_column("history_imported_at")
        batch.drop_column("history_import_started_at")
