"""cluster/local_cluster.py keeps its temp dir private: created 0700, a directory of another
user, one open to others or a symbolic link is refused, and the token is never written through
a planted symbolic link. No Ray node is started here."""

from __future__ import annotations

import os
import runpy
import stat
from pathlib import Path

import pytest
from deploy_manifests import REPO

SCRIPT = runpy.run_path(str(REPO / "cluster" / "local_cluster.py"), run_name="local_cluster")
private_dir, write_token, main = SCRIPT["private_dir"], SCRIPT["write_token"], SCRIPT["main"]


def test_a_new_temp_dir_is_created_private(tmp_path: Path) -> None:
    path = private_dir(tmp_path / "rayrec-local-1")
    info = os.lstat(path)
    assert stat.S_ISDIR(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o700
    assert private_dir(path) == path  # its own directory, again: accepted


def test_a_directory_open_to_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "open"
    path.mkdir()
    path.chmod(0o777)
    with pytest.raises(SystemExit, match="lets others in"):
        private_dir(path)


@pytest.mark.skipif(os.getuid() != 0, reason="making a directory of another user needs root")
def test_a_directory_of_another_user_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "foreign"
    path.mkdir(mode=0o700)
    os.chown(path, 4242, 4242)
    with pytest.raises(SystemExit, match="owned by uid 4242"):
        private_dir(path)


def test_a_symlinked_temp_dir_is_refused_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    link = tmp_path / "rayrec-local-2"
    link.symlink_to(target)
    with pytest.raises(SystemExit, match="not a directory"):
        private_dir(link)
    with pytest.raises(SystemExit, match="not a directory"):
        main(["start", "--port", "26999", "--temp-dir", str(link), "--timeout", "1"])
    assert list(target.iterdir()) == []  # nothing was written where the link points


def test_the_token_is_not_written_through_a_planted_symlink(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    directory = private_dir(tmp_path / "cluster")
    (directory / "auth_token").symlink_to(victim)
    write_token(directory / "auth_token")
    token = directory / "auth_token"
    info = os.lstat(token)
    assert stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600
    assert len(token.read_text()) == 64
    assert victim.read_text() == "precious"
