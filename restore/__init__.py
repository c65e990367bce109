"""restore package (see README)."""
