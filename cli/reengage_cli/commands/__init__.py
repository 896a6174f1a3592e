"""One module per group of `reengage` commands; main.py wires them into the parser."""
