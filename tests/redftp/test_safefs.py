"""safefs, the descriptor-relative operations of the root-run sFTP commands: what each refuses and never follows.

The end-to-end races (an attacker process swapping folders while the real commands run as root) are in
test_privileged_races.py; these check the primitives one by one on a temporary folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from redpss.redftp.errors import RedftpError
from redpss.redftp.ops import new_archive_folder
from redpss.redftp.safefs import Dir, MissingPath


def test_open_refuses_a_link_below_a_folder_others_can_write(tmp_path: Path) -> None:
    """tmp_path lies below /tmp (writable by all), so no link from there on is followed."""
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to("real")
    with Dir.open(tmp_path / "real") as opened:
        assert opened.stat().st_ino == (tmp_path / "real").stat().st_ino
    with pytest.raises(RedftpError, match=r"link is not a folder \(or is a symbolic link in .*refusing to follow"):
        Dir.open(tmp_path / "link" / "x")
    with pytest.raises(MissingPath, match="does not exist"):
        Dir.open(tmp_path / "missing")
    with pytest.raises(RedftpError, match=r"without '\.\.'"):
        Dir.open(tmp_path / ".." / "real")


def test_open_follows_links_that_only_root_can_have_made() -> None:
    """A link directly in a root-only folder (such as /bin on merged-/usr systems) is followed."""
    link = next((p for p in (Path("/bin"), Path("/lib"), Path("/sbin")) if p.is_symlink()), None)
    if link is None or Path("/").stat().st_uid != 0:
        pytest.skip("no root-owned link in / on this system")
    with Dir.open(link) as opened:
        assert opened.stat().st_ino == link.resolve().stat().st_ino
    with pytest.raises(RedftpError, match=r"^/etc/passwd is not a folder$"):
        Dir.open(Path("/etc/passwd/x"))


def test_entry_names_cannot_leave_the_folder(tmp_path: Path) -> None:
    with Dir.open(tmp_path) as opened:
        for name in ("../x", "a/b", "..", ".", ""):
            with pytest.raises(RedftpError, match="is not a single file name"):
                opened.unlink(name)


def test_a_folder_swapped_for_a_link_keeps_receiving_through_its_descriptor(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    with Dir.open(tmp_path) as top, top.make_dir("archive", 0o750) as archive:
        (tmp_path / "archive").rename(tmp_path / "moved")
        (tmp_path / "archive").symlink_to(outside)
        assert not top.holds("archive", archive)
        archive.write_file("kept.csv", b"1\n", 0o640)
        with pytest.raises(RedftpError, match="is a symbolic link"):
            top.sub("archive")
    assert (tmp_path / "moved" / "kept.csv").read_bytes() == b"1\n"
    assert list(outside.iterdir()) == []


def test_remove_tree_removes_links_not_what_they_name(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("x")
    tree = tmp_path / "tree"
    (tree / "deep").mkdir(parents=True)
    (tree / "to-outside").symlink_to(outside)
    (tree / "deep" / "file").symlink_to(outside / "precious")
    with Dir.open(tmp_path) as top:
        assert top.remove_tree("tree")
        assert not top.remove_tree("tree")
        with pytest.raises(RedftpError, match="is not a folder; left alone"):
            (tmp_path / "plain").write_text("")
            top.remove_tree("plain")
    assert (outside / "precious").read_text() == "x"


def test_remove_tree_removes_a_tree_deeper_than_python_recurses(tmp_path: Path) -> None:
    """An sFTP user can nest folders past Python's recursion limit (mkdir and cd in a loop); shutil.rmtree raised
    RecursionError there, half-way through redftp_userdel. Names of the tree's own like the ones used while removing
    are no obstacle."""
    depth = sys.getrecursionlimit() + 500
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    os.mkdir("tree", dir_fd=fd)
    for level in range(depth):  # relative to the folder above: no path grows longer than one name
        below = os.open("tree" if level == 0 else "d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = below
        os.mkdir("d", dir_fd=fd)
        os.mkdir(".removing-1", dir_fd=fd)
        os.close(os.open("f", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=fd))
    os.close(fd)
    try:
        with Dir.open(tmp_path) as top:
            assert top.remove_tree("tree")
        assert list(tmp_path.iterdir()) == []
    finally:  # pytest's own clean-up of old temporary folders uses shutil.rmtree: never leave it such a tree
        subprocess.run(["rm", "-rf", "--", str(tmp_path / "tree")], check=True)


@pytest.fixture
def other_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A folder on another filesystem than tmp_path (/dev/shm is a tmpfs), to move across."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no second filesystem (/dev/shm) here")
    folder = Path(tempfile.mkdtemp(dir=shm))
    try:
        yield folder
    finally:
        shutil.rmtree(folder)


@pytest.mark.parametrize("across", [False, True], ids=["same-filesystem", "across-filesystems"])
def test_moving_entries_keeps_links_as_links_and_loses_nothing(
    tmp_path: Path, request: pytest.FixtureRequest, across: bool
) -> None:
    source = tmp_path / "upload"
    (source / "sub").mkdir(parents=True)
    (source / "a.csv").write_text("a")
    (source / "sub" / "b.csv").write_text("b")
    (source / "sub" / "b.csv").chmod(0o640)
    (source / "etc").symlink_to("/etc")
    target = request.getfixturevalue("other_filesystem") if across else tmp_path / "archive"
    target.mkdir(exist_ok=True)
    with Dir.open(source) as uploads, Dir.open(target) as archive:
        uploads.move_entries_to(archive)
        assert uploads.names() == []
        assert archive.hand_over(os.getuid(), os.getgid(), {os.getuid()}) == 2
    assert (target / "a.csv").read_text() == "a"
    assert (target / "sub" / "b.csv").read_text() == "b"
    assert (target / "sub" / "b.csv").stat().st_mode & 0o777 == 0o640
    assert (target / "etc").readlink() == Path("/etc")


def test_a_sparse_upload_moved_across_filesystems_stays_sparse(tmp_path: Path, other_filesystem: Path) -> None:
    """An sFTP user can write at any offset: a few bytes at 256 MiB make a file that takes a few KiB of disk. The copy
    (as root, at `redftp_userdel --keep-data`) must not write its holes out as zeros, or a small upload fills the
    disk of the archive."""
    size = 256 * 1024 * 1024
    source = tmp_path / "upload"
    source.mkdir()
    with (source / "sparse.bin").open("wb") as handle:
        for offset in (0, size // 2, size - 5):
            handle.seek(offset)
            handle.write(b"data!")
    with Dir.open(source) as uploads, Dir.open(other_filesystem) as archive:
        uploads.move_entries_to(archive)
    copy = other_filesystem / "sparse.bin"
    assert copy.stat().st_size == size
    assert copy.stat().st_blocks * 512 < 1024 * 1024, "the holes were written out"
    with copy.open("rb") as handle:
        for offset in (0, size // 2, size - 5):
            handle.seek(offset)
            assert handle.read(5) == b"data!"
        handle.seek(4096)
        assert handle.read(65536) == bytes(65536)


def test_hand_over_changes_only_what_the_named_owners_had(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("changing owners needs root")
    (tmp_path / "d").mkdir()
    for name in ("mine", "d/mine", "roots", "twice"):
        (tmp_path / name).write_text("")
    os.link(tmp_path / "twice", tmp_path / "d" / "twice")  # a second name: left as it is
    for name in ("mine", "d/mine", "d", "twice"):
        os.chown(tmp_path / name, 1201, 1201)
    (tmp_path / "link").symlink_to(tmp_path / "roots")
    os.chown(tmp_path / "link", 1201, 1201, follow_symlinks=False)
    with Dir.open(tmp_path) as top:
        assert top.hand_over(1202, 1202, {1201}) == 5
    owners = {name: (tmp_path / name).lstat().st_uid for name in ("mine", "d", "d/mine", "roots", "link", "twice")}
    assert owners == {"mine": 1202, "d": 1202, "d/mine": 1202, "roots": 0, "link": 1201, "twice": 1201}


def test_a_taken_archive_name_gets_the_next_one_and_the_last_refusal_says_nothing_was_moved(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("archive folders are made root-owned")
    (tmp_path / "redftp_alice_1").mkdir()
    with Dir.open(tmp_path) as archive:
        name, made = new_archive_folder(archive, "redftp_alice_1", attempts=3)
        made.close()
        assert name == "redftp_alice_1-2"
        (tmp_path / "redftp_alice_1-3").mkdir()
        with pytest.raises(RedftpError, match=r"redftp_alice_1-3 exists\); nothing was moved or removed, run the"):
            new_archive_folder(archive, "redftp_alice_1", attempts=3)
