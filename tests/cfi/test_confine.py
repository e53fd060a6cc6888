"""Confinement's own path resolution (the per-file hot path) against os.path.realpath, on a tree full of links."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from redpss.cfi.confine import ConfinedFilesystem, Confinement


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """real/data holds files and links of every kind; data_root is reached through a link (`served` -> real/data)."""
    data = tmp_path / "real" / "data"
    (data / "input" / "alice").mkdir(parents=True)
    (data / "input" / "alice" / "a.csv").write_text("1\n")
    (data / "archive").mkdir()
    (data / "archive" / "old.csv").write_text("2\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_text("3\n")
    (data / "input" / "to_archive").symlink_to("../archive")  # inside, relative with ..
    (data / "input" / "chain").symlink_to("to_archive")  # a link to a link
    (data / "input" / "out").symlink_to(outside)  # absolute, leads out
    (data / "input" / "out_relative").symlink_to("../../../outside")
    (data / "input" / "dangling").symlink_to("nowhere")
    (data / "input" / "alice" / "back").symlink_to("..")  # a folder link pointing up, inside
    (data / "input" / "loop").symlink_to("loop")
    (data / "mail" / "spool").mkdir(parents=True)
    (data / "mail" / "spool" / "1.mail").write_text("Subject: another's\n")
    (data / "work" / "sendfile" / "r1").mkdir(parents=True)
    (data / "work" / "sendfile" / "r1" / "export.csv").write_text("4\n")
    (data / "work" / "mine.csv").write_text("5\n")
    (data / "input" / "to_mail").symlink_to("../mail/spool")  # a link into a private folder
    (tmp_path / "served").symlink_to(data)
    return tmp_path / "served"


RELATIVE = [
    "",
    "input",
    "input/alice/a.csv",
    "input/missing/file.csv",
    "input/to_archive/old.csv",
    "input/chain/old.csv",
    "input/out/secret.csv",
    "input/out_relative/secret.csv",
    "input/dangling",
    "input/dangling/more",
    "input/alice/back/alice/a.csv",
    "input/loop",
    "input//alice/./a.csv",
]


@pytest.mark.parametrize("relative", RELATIVE)
def test_resolve_gives_what_realpath_gives(tree: Path, relative: str) -> None:
    path = f"{tree}/{relative}"
    assert Confinement(tree, None).resolve(path) == os.path.realpath(path)


def test_resolve_outside_the_data_tree_is_realpath(tree: Path) -> None:
    other = str(tree.parent / "outside" / "secret.csv")
    assert Confinement(tree, None).resolve(other) == os.path.realpath(other)


@pytest.mark.parametrize(
    ("relative", "allowed"),
    [
        ("input/alice/a.csv", True),
        ("input/to_archive/old.csv", True),
        ("input/chain/old.csv", True),
        ("input/alice/back/alice/a.csv", True),
        ("input/out/secret.csv", False),
        ("input/out_relative/secret.csv", False),
        ("../outside/secret.csv", False),
        ("mail/spool/1.mail", False),  # other senders' mails: any user with ACCESS on the connection may IMPORT
        ("mail", False),
        ("input/to_mail/1.mail", False),
        ("work/sendfile/r1/export.csv", False),  # a table exported for one partner
        ("work/mine.csv", True),
    ],
)
def test_links_inside_are_served_links_out_refused(tree: Path, relative: str, allowed: bool) -> None:
    assert Confinement(tree, None).allows(os.path.normpath(f"{tree}/{relative}")) is allowed


def test_a_link_swapped_after_the_first_check_is_seen(tree: Path) -> None:
    """Nothing below the data tree's root is cached: a link changed between two commands is resolved anew."""
    confinement = Confinement(tree, None)
    path = f"{tree}/input/swap/secret.csv"
    (tree / "input" / "swap").symlink_to(tree / "archive")
    assert confinement.allows(f"{tree}/input/swap/old.csv")
    (tree / "input" / "swap").unlink()
    (tree / "input" / "swap").symlink_to(tree.parent / "outside")
    assert not confinement.allows(path)


def _filesystem(root: Path) -> ConfinedFilesystem:
    served: type[ConfinedFilesystem] = type("Served", (ConfinedFilesystem,), {"confinement": Confinement(root, None)})
    return served(str(root), None)


@pytest.mark.parametrize(
    ("relative", "shown"),
    [("", "/"), ("input/alice/a.csv", "/input/alice/a.csv"), ("input/../archive", "/archive"), ("..", "/")],
)
def test_replies_show_paths_relative_to_the_data_tree(tree: Path, relative: str, shown: str) -> None:
    assert _filesystem(tree).fs2ftp(f"{tree}/{relative}") == shown


def test_a_path_outside_as_text_shows_as_root(tree: Path) -> None:
    assert _filesystem(tree).fs2ftp(str(tree.parent / "outside" / "secret.csv")) == "/"
    assert _filesystem(tree).fs2ftp(f"{tree}-sibling/x") == "/"
