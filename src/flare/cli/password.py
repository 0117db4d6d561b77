"""Where a command gets the key password: a file, an environment variable, or a prompt.

Daemons and CI have no terminal, so the order is: `--password-file` if given, else
`$FLARE_PASSWORD` if set, else an interactive prompt. A password file is a secret like a key
file and gets the same permission check.

The prompt needs stdin to be a terminal. Without one, Python's getpass falls back to reading
stdin in the clear and prints its own warnings ("Password input may be echoed"); flare-node
refuses instead, with one message that names the two ways to give the password unattended.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from flare.node.keys import read_private_file
from flare.protocol.errors import ConfigError

PASSWORD_ENV = "FLARE_PASSWORD"  # noqa: S105 (the variable's name, not a password)
MIN_NEW_PASSWORD_LENGTH = 8

PasswordFileOption = Annotated[
    Path | None,
    typer.Option(
        "--password-file",
        help=f"File whose first line is the key password (mode 0600). "
        f"Default: ${PASSWORD_ENV}, else a prompt.",
        dir_okay=False,
        show_default=False,
    ),
]


class PasswordError(ConfigError):
    """No usable password could be obtained."""


def read_password(
    password_file: Path | None,
    *,
    env_var: str = PASSWORD_ENV,
    prompt: str = "Password",
    confirm: bool = False,
) -> str:
    """The password from `password_file`, else `$env_var`, else a hidden prompt.

    `confirm` asks twice at the prompt (for a new password); files and variables are taken
    as they are. An empty password is refused from every source, and so is the prompt when
    stdin is a file or pipe (the caller meant to run unattended).
    """
    if password_file is not None:
        data = read_private_file(password_file, what="password file")
        try:
            lines = data.decode("utf-8").splitlines()
        except UnicodeDecodeError:
            raise PasswordError(f"password file {password_file} is not UTF-8 text") from None
        password = lines[0] if lines else ""
        source = f"password file {password_file}"
    elif os.environ.get(env_var):
        password, source = os.environ[env_var], f"${env_var}"
    else:
        unattended = (
            "put it in a file of mode 0600 and pass --password-file FILE (in a node config: "
            f"[keys] password_file), or set ${env_var}"
        )
        if not _stdin_is_terminal():
            raise PasswordError(
                "no password given, and stdin is not a terminal to ask for one", hint=unattended
            )
        try:
            password = typer.prompt(prompt, hide_input=True, confirmation_prompt=confirm, err=True)
        except typer.Abort:  # EOF or Ctrl-C at the prompt
            raise PasswordError("no password given", hint=unattended) from None
        source = "the prompt"
    if not password:
        raise PasswordError(f"the password from {source} is empty")
    return password


def _stdin_is_terminal() -> bool:
    """Whether a hidden prompt can work: stdin is not a plain file or pipe.

    A stream put in place of stdin inside the process (click's test runner, an embedding
    program) has no descriptor; it is left to the prompt, which reads it like a terminal.
    """
    if sys.stdin is None:
        return False
    try:
        return os.isatty(sys.stdin.fileno())
    except io.UnsupportedOperation:  # a stream without a descriptor
        return True
    except (OSError, ValueError):  # stdin closed
        return False


def check_new_password(password: str) -> None:
    """Refuse passwords too short to protect keys that may hold funds."""
    if len(password) < MIN_NEW_PASSWORD_LENGTH:
        raise PasswordError(
            f"the new password has {len(password)} characters; at least "
            f"{MIN_NEW_PASSWORD_LENGTH} are required",
            hint="choose a longer password (a passphrase of several words works well)",
        )
