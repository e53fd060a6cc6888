"""The root-run sFTP commands against a local attacker who changes the trees it can write while the command runs.

redsys owns the instance tree (data/input, data/archive) and, through group redftp, can write every user's upload/
folder; the sFTP user can write its upload/ folder. Whatever they swap in mid-operation (a folder replaced by a
symbolic link to /etc, a link planted among the uploads), root must neither write nor change ownership outside the
tree it was asked to work on. The attacker is a real process running as redsys inside the scratch root, racing the
real command; the scratch root's /etc is a copy, so a successful attack is seen there and harms nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.redftp.sftpsite import PYTHON, Site, ed25519_key, module_site

pytestmark = [pytest.mark.slow, pytest.mark.root]

UPLOADS = 3000  # enough files that moving them takes far longer than one pass of the attacker's loop

# Runs as redsys: whenever a real folder named redftp_* appears in data/archive, move it aside and put a symbolic
# link to TARGET in its place; repeat until STOP exists. Prints the number of swaps.
SWAPPER = """
import os, sys
archive, target, stop = sys.argv[1:4]
swaps = 0
print("ready", flush=True)
while not os.path.exists(stop):
    try:
        names = os.listdir(archive)
    except OSError:
        continue
    for name in names:
        path = os.path.join(archive, name)
        if name.startswith("redftp_") and ".moved" not in name and not os.path.islink(path):
            try:
                os.rename(path, f"{path}.moved{swaps}")
                os.symlink(target, path)
                swaps += 1
            except OSError:
                pass
print(swaps, flush=True)
"""

# Runs as the sFTP user: fill upload/ with files (and a sub-folder), as a long delivery would.
FILL = """
import os, sys
upload, count = sys.argv[1], int(sys.argv[2])
os.mkdir(os.path.join(upload, "sub"))
for i in range(count):
    with open(os.path.join(upload, "sub" if i % 10 == 0 else "", f"race{i:05d}.csv"), "w") as f:
        f.write("x\\n")
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with module_site(tmp_path_factory, "redftp-races") as running:
        yield running


def _outside_changes(site: Site, folder: str, uids: set[int]) -> list[str]:
    """Entries under `folder` in the scratch root that the attack put there or handed to one of `uids`."""
    found = []
    top = site.root.path(folder)
    for parent, dirs, files in os.walk(top):
        for name in (*dirs, *files):
            path = Path(parent, name)
            if name.startswith("race") or path.lstat().st_uid in uids:
                found.append(str(path.relative_to(site.root.root)))
    return found


def _files_under(folder: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(folder))


def test_links_planted_in_upload_are_moved_or_removed_never_followed(site: Site) -> None:
    """redsys (group redftp) plants links in a user's upload/ to root-owned places; userdel leaves those alone."""
    for user in ("linked", "linkedkeep"):
        assert site.useradd(user, ed25519_key(user)).returncode == 0
        upload = f"/app/redftp/env/tst1/{user}/upload"
        planted = (
            f"import os\nos.symlink('/etc', '{upload}/etc-link')\nos.symlink('/etc/shadow', '{upload}/shadow')\n"
            f"os.mkdir('{upload}/deep')\nos.symlink('/etc', '{upload}/deep/etc')\n"
        )
        site.root.run([PYTHON, "-c", planted], user="redsys", group="redftp", check=True)
    before = {p: p.lstat() for p in site.root.path("/etc").rglob("*")}
    assert site.userdel("linked").returncode == 0
    done = site.userdel("linkedkeep", "--keep-data")
    assert done.returncode == 0, done.stderr
    after = {p: p.lstat() for p in site.root.path("/etc").rglob("*")}
    changed = [str(p) for p in before if p in after and after[p].st_uid != before[p].st_uid]
    added = [str(p) for p in after if p not in before and after[p].st_uid != 0]
    assert (changed, added) == ([], [])
    assert site.root.path("/etc/shadow").exists()
    archive = next(site.root.path("/app/redsys/env/tst1/data/archive").glob("redftp_linkedkeep_*"))
    assert (archive / "shadow").readlink() == Path("/etc/shadow")  # moved as a link, never as what it names
    for user in ("linked", "linkedkeep"):
        assert not site.root.path(f"/app/redftp/env/tst1/{user}").exists()


def test_keep_data_never_writes_or_chowns_through_a_swapped_archive_folder(site: Site) -> None:
    assert site.useradd("victim", ed25519_key("victim")).returncode == 0
    system = "redftp_tst1_victim"
    upload = "/app/redftp/env/tst1/victim/upload"
    site.root.run([PYTHON, "-c", FILL, upload, str(UPLOADS)], user=system, group="redftp", check=True)
    archive = "/app/redsys/env/tst1/data/archive"
    stop = "/tmp/stop-swapper"
    attacker = subprocess.Popen(
        site.root.command([PYTHON, "-c", SWAPPER, archive, "/etc", stop], user="redsys"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=site.root.environment(),
    )
    try:
        assert attacker.stdout is not None
        assert attacker.stdout.readline().strip() == "ready"
        done = site.userdel("victim", "--keep-data")
    finally:
        site.root.path(stop).touch()
        out, err = attacker.communicate(timeout=30)
    swaps = int(out.strip() or 0)
    assert swaps >= 1, f"the attacker never swapped the archive folder; the race was not run ({err})"
    uids = {site.uid("redsys"), 1200}
    assert _outside_changes(site, "/etc", uids) == []
    assert site.root.path("/etc/passwd").stat().st_uid == 0
    # Nothing accepted is lost: every upload is in the archive folder root filled (wherever redsys moved it).
    assert done.returncode == 0, done.stderr
    assert f"kept {UPLOADS} uploaded file(s)" in done.stdout
    assert "was moved or replaced while the files were being moved into it" in done.stderr
    # Folders made and swapped before they could be opened stay empty: the command made a new one each time.
    kept = [
        p
        for p in site.root.path(archive).glob("redftp_victim_*")
        if p.is_dir() and not p.is_symlink() and any(p.iterdir())
    ]
    assert _files_under(kept[0]) == UPLOADS
    assert len(kept) == 1
    redsys = site.uid("redsys")
    assert {p.lstat().st_uid for p in [kept[0], *kept[0].rglob("*")]} == {redsys}


def test_useradd_never_follows_a_link_redsys_put_in_the_instance_tree(site: Site) -> None:
    """redsys replaces its data/ by a link to a root-owned folder holding an input/: root must not link there."""
    data = site.root.path("/app/redsys/env/tst1/data")
    decoy = site.root.path("/etc/redpss-decoy")
    (decoy / "input").mkdir(parents=True)
    swap = "import os\nos.rename('{0}', '{0}.real')\nos.symlink('/etc/redpss-decoy', '{0}')\n"
    site.root.run([PYTHON, "-c", swap.format("/app/redsys/env/tst1/data")], user="redsys", check=True)
    try:
        done = site.useradd("mallory", ed25519_key("mallory"))
        assert list((decoy / "input").iterdir()) == []
        assert done.returncode == 1
        assert "/app/redsys/env/tst1/data is not a folder (or is a symbolic link in /app/redsys/env/tst1" in done.stderr
        with pytest.raises(KeyError):
            site.uid("redftp_tst1_mallory")  # undone
        assert not site.root.path("/app/redftp/env/tst1/mallory").exists()
    finally:
        data.unlink()
        data.with_name("data.real").rename(data)
        shutil.rmtree(decoy)
