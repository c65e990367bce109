"""study package (see README)."""
