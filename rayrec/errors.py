"""Errors shared across rayrec's command lines (its own module, so that ``python -m rayrec.cli``,
which runs ``rayrec/cli.py`` as ``__main__``, and the library raise the very same class)."""


class CliError(Exception):
    """A user error: printed as one line, exit code 2, no traceback."""
