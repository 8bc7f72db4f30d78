"""Independent evaluation worlds for detection (see SPEC.md)."""
