"""Files an instance user may not read or change, for tests that run as root.

Root reads and moves every file, so tests of "the instance user cannot read this upload" or "cannot move out of this
folder" run the code under test without root's two file-access overrides (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
it is then bound by owner, group and mode like the redsys user, and the files are made to belong to another user,
as an sFTP user's uploads do.
"""

from __future__ import annotations

import os
from pathlib import Path

WITHOUT_FILE_ACCESS_OVERRIDE = (
    "setpriv",
    "--inh-caps=-dac_override,-dac_read_search",
    "--bounding-set=-dac_override,-dac_read_search",
    "--",
)
# also without CAP_FOWNER, which the redsys user lacks too: the kernel then refuses a hard link to another user's
# file it may not write (fs.protected_hardlinks)
WITHOUT_FILE_ACCESS_OR_OWNER_OVERRIDE = (
    "setpriv",
    "--inh-caps=-dac_override,-dac_read_search,-fowner",
    "--bounding-set=-dac_override,-dac_read_search,-fowner",
    "--",
)
ANOTHER_USER = 1234  # an sFTP user's uid; the group stays root's, standing in for redftp


def owned_by_another_user(path: Path, mode: int) -> Path:
    """`path` owned by ANOTHER_USER (group root) with `mode`: what an sFTP upload or folder looks like to redsys."""
    os.chown(path, ANOTHER_USER, 0)
    path.chmod(mode)
    return path
