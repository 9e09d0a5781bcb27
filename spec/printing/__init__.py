"""The spec's printers: LaTeX, MathML and Unicode, one module per output language."""
