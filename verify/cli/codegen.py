"""``lmspec codegen ID``: the batched PyTorch function generated from an equation's SymPy definition."""

import sys

import typer


def codegen_command(equation: str = typer.Argument(..., help="An equation id.")) -> None:
    """Print the batched PyTorch function generated from an equation's SymPy definition."""
    from ... import spec
    from ..codegen import generate

    sys.stdout.write(generate(spec.get(equation)))
