"""Check a RayJob entrypoint against the job it runs: the real argument parser, no string match.

``python jobs/X.py ARGS`` runs ``rayrec.cli.run_job(COMMAND, ARGS)`` (jobs/X.py sets COMMAND), so
ARGS are accepted when ``rayrec.cli.build_parser().parse_args([*COMMAND, *ARGS])`` accepts them.
Flags must also be spelled out in full: argparse would take an abbreviation such as ``--stor``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import runpy
import shlex
from pathlib import Path

from deploy_manifests import REPO

from rayrec.cli import build_parser

FLAG = re.compile(r"^--?[A-Za-z]")


class EntrypointError(ValueError):
    """An entrypoint that the job it names would refuse."""


def job_command(script: Path) -> list[str]:
    """The ``COMMAND`` of a ``jobs/*.py`` file (loaded without running its ``__main__`` block)."""
    return list(runpy.run_path(str(script), run_name="rayrec_job")["COMMAND"])


def option_strings(parser: argparse.ArgumentParser, command: list[str]) -> set[str]:
    """The option strings of the sub-command ``command`` of ``parser``."""
    for token in command:
        subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subparsers or token not in subparsers[0].choices:
            break
        parser = subparsers[0].choices[token]
    return {option for action in parser._actions for option in action.option_strings}


def parse_entrypoint(entrypoint: str, repo: Path = REPO) -> tuple[str, argparse.Namespace]:
    """Return the job file (``jobs/X.py``) and the parsed arguments of a RayJob entrypoint.

    Raises ``EntrypointError`` when the entrypoint is not ``python jobs/X.py ...`` of an
    existing job, or when that job's parser refuses its arguments.
    """
    tokens = shlex.split(entrypoint)
    if len(tokens) < 2 or tokens[0] != "python" or not tokens[1].startswith("jobs/"):
        raise EntrypointError(f"not `python jobs/X.py ...`: {entrypoint!r}")
    script = repo / tokens[1]
    if not script.is_file():
        raise EntrypointError(f"{tokens[1]} does not exist")
    command, args = job_command(script), tokens[2:]
    parser = build_parser()
    known = option_strings(parser, command)
    unknown = [t for t in args if FLAG.match(t) and t.split("=")[0] not in known]
    if unknown:
        raise EntrypointError(f"{tokens[1]} has no flag {', '.join(unknown)}")
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            parsed = parser.parse_args([*command, *args])
    except SystemExit as exit_:
        raise EntrypointError(f"{tokens[1]}: {errors.getvalue().strip()}") from exit_
    return tokens[1], parsed
