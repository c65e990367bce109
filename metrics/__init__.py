"""metrics package (see README)."""
