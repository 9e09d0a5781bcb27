"""``lmspec completion SHELL``: the script that gives ``lmspec`` tab completion in bash, zsh, fish or
PowerShell (commands, options, equation ids where a command takes one).

    eval "$(lmspec completion bash)"        # in ~/.bashrc
    lmspec completion zsh > ~/.zfunc/_lmspec # zsh, with ~/.zfunc on fpath
    lmspec completion fish > ~/.config/fish/completions/lmspec.fish

The shell then calls ``lmspec`` with ``_LMSPEC_COMPLETE`` set to ask for completions; ``main`` loads the
completion machinery only then, so an ordinary start pays nothing for it.
"""

import typer

from ._common import UsageError

SHELLS = ("bash", "zsh", "fish", "powershell", "pwsh")
#: the variable the shell sets when it asks lmspec for completions
COMPLETE_VAR = "_LMSPEC_COMPLETE"


def enable() -> None:
    """Register the shells' completion classes (Typer's; done only when a shell asks)."""
    from typer.completion import completion_init

    completion_init()


def completion_command(
    ctx: typer.Context,
    shell: str = typer.Argument(..., help=f"The shell: {', '.join(SHELLS)}."),
) -> None:
    """Print the shell script that gives lmspec tab completion."""
    if shell not in SHELLS:
        raise UsageError(f"completion is for {', '.join(SHELLS)}, found {shell!r}")
    enable()
    from typer.completion import shell_completion

    root = ctx.find_root().command  # the lmspec command group itself
    print(shell_completion.get_completion_class(shell)(root, {}, "lmspec", COMPLETE_VAR).source())
