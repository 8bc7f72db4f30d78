"""State as declared plain data: the format, engine snapshots, window partials."""
