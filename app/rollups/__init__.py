"""Daily rollups of append-only facts, kept in the transaction that writes the fact."""
