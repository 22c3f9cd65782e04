"""Real review data shipped with the repository (not with the installed package).

``data/amazon-2014/Musical_Instruments_5.csv.zip`` (2.4 MB, the Amazon 2014 Musical Instruments
5-core file: 10,261 reviews; source, citation and sha256 in ``data/amazon-2014/SOURCE.md``) sits
in the repository's ``data/`` directory, beside ``rayrec/``. It is found relative to this
module (a checkout, an editable install: ``make setup``), else in ``./data`` of the working
directory: the container image copies ``data/`` into its working directory, and ``ray job
submit --working-dir .`` uploads it with the jobs.
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = REPO_ROOT / "data"
MUSICAL_INSTRUMENTS = Path("amazon-2014") / "Musical_Instruments_5.csv.zip"


def musical_instruments_path(data_dir: Path = DATA_DIR) -> Path:
    """The shipped Amazon 2014 Musical Instruments 5-core CSV zip (an ``amazon2014`` source).

    ``data_dir`` is the repository's ``data/`` unless given (another checkout's, a test's);
    with the default, ``./data`` of the working directory is the fallback.

    Raises:
        FileNotFoundError: naming the expected path, where rayrec runs outside a checkout.
    """
    path = data_dir / MUSICAL_INSTRUMENTS
    if path.is_file():
        return path
    here = Path.cwd() / "data" / MUSICAL_INSTRUMENTS
    if data_dir == DATA_DIR and here.is_file():
        return here
    raise FileNotFoundError(
        f"{path} not found: the Musical Instruments reviews ship with the repository's "
        "data/ directory, not with the installed package; run from a checkout"
    )
