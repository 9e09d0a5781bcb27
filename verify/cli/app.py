"""The ``lmspec`` command line: one Typer app, one module per command (list, show, codegen, params, verify,
audit, render, mutate, bench), each registered here.

Exit codes: 0 everything passed, 1 a check failed, 2 bad usage or input (one sentence, no traceback).
Every command module is light to import; what a command needs is imported when it runs.
"""

import os
import sys

import typer

from ._common import run, version
from .audit import audit_command
from .bench import bench_command
from .codegen import codegen_command
from .completion import COMPLETE_VAR, completion_command, enable
from .list_ import list_command
from .mutate import mutate_command
from .params import params_command
from .render import render_command
from .show import show_command
from .verify import verify_command

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},  # -h as well, as users type it
    help="lmspec: the equations of 'Anatomy of Neural Language Models' as an executable spec, and a "
    "verifier that holds PyTorch code to it.",
)


def _print_version(value: bool) -> None:
    if value:
        sys.stdout.write(f"lmspec {version()}\n")
        raise typer.Exit()


@app.callback()
def _options(
    version_: bool = typer.Option(
        False, "--version", help="Print lmspec's version and exit.", is_eager=True, callback=_print_version
    ),
) -> None:
    """The options before any command."""


#: An example for each command's --help (each runs as written: tests/cli/test_cli.py runs the quick ones).
EXAMPLES = {
    "list": "lmspec list --family attention",
    "show": "lmspec show attention.multi_head --format latex",
    "codegen": "lmspec codegen norm.layer_norm",
    "params": "lmspec params gpt2 --set L=24",
    "verify": "lmspec verify attention --profile quick --jobs 2 --junit report.xml",
    "audit": "lmspec audit my_attention.py:attention --as attention.scaled_dot_product --explain",
    "render": "lmspec render --format html --output catalogue.html",
    "mutate": "lmspec mutate --jobs 2 --json build/mutation.json",
    "bench": "lmspec bench --only audit --repeat 5",
    "completion": 'eval "$(lmspec completion bash)"',
}
for _name, _command in (
    ("list", list_command),
    ("show", show_command),
    ("codegen", codegen_command),
    ("params", params_command),
    ("verify", verify_command),
    ("audit", audit_command),
    ("render", render_command),
    ("mutate", mutate_command),
    ("bench", bench_command),
    ("completion", completion_command),
):
    app.command(_name, epilog=f"Example: {EXAMPLES[_name]}")(_command)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script: user errors exit 2 with one sentence."""
    if COMPLETE_VAR in os.environ:  # the shell asks for completions (lmspec completion SHELL)
        enable()
    return run(app, argv)
