"""Table and event file readers (CSV, JSON lines, Parquet)."""
