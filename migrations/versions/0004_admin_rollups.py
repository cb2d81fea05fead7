"""admin rollups: points issued and redeemed per shop, UTC day and slot, backfilled

Revision ID: 0004_admin_rollups
Revises: 0003_admin
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_admin_rollups"
down_revision: str | None = "0003_admin"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Kept literal here (not imported) so this migration stays what it was when it ran.
ISSUING_KINDS = ("birthday", "custom", "earn", "referral", "review", "signup", "import", "adjust")
SLOTS = 8


def upgrade() -> None:
    op.create_table(
        "points_days",
        sa.Column("shop_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("slot", sa.SmallInteger(), nullable=False),
        sa.Column("issued", sa.BigInteger(), nullable=False),
        sa.Column("redeemed", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["shop_id"],
            ["shops.id"],
            name=op.f("fk_points_days_shop_id_shops"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("shop_id", "day", "slot", name=op.f("pk_points_days")),
    )
    postgres = op.get_bind().dialect.name == "postgresql"
    day = "date(timezone('UTC', created_at))" if postgres else "date(created_at)"
    kinds = ", ".join(f"'{kind}'" for kind in ISSUING_KINDS)
    op.execute(
        f"""
        INSERT INTO points_days (shop_id, day, slot, issued, redeemed)
        SELECT shop_id, {day}, member_id % {SLOTS},
            coalesce(sum(CASE WHEN kind IN ({kinds}) AND points > 0 AND status <> 'cancelled'
                THEN points ELSE 0 END), 0),
            coalesce(sum(CASE WHEN kind = 'redeem' THEN -points ELSE 0 END), 0)
        FROM ledger_entries
        GROUP BY shop_id, {day}, member_id % {SLOTS}
        """
    )


def downgrade() -> None:
    op.drop_table("points_days")
