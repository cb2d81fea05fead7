"""admin analytics indexes: a shop's ledger entries, orders and members by date

Revision ID: 0003_admin
Revises: 0002_connectors
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003_admin"
down_revision: str | None = "0002_connectors"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_ledger_entries_shop_id_created_at", "ledger_entries", ["shop_id", "created_at"]
    )
    op.create_index("ix_orders_shop_id_placed_at", "orders", ["shop_id", "placed_at"])
    op.create_index("ix_members_shop_id_created_at", "members", ["shop_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_members_shop_id_created_at", table_name="members")
    op.drop_index("ix_orders_shop_id_placed_at", table_name="orders")
    op.drop_index("ix_ledger_entries_shop_id_created_at", table_name="ledger_entries")
