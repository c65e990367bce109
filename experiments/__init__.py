"""Experiments: the paper's analyses, the demo, and the `mdf` command line (imports everything; nothing imports it)."""
