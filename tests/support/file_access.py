"""Files an instance user may not read or change, for tests that run as root.

Root reads and moves every file, so tests of "the instance user cannot read this upload" or "cannot move out of this
folder" run the code under test without root's two file-access overrides (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
it is then bound by owner, group and mode like the redsys user, and the files are made to belong to another user,
as an sFTP user's uploads do.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
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


class HeldWriter:
    """A process of its own with a file open for appending, as sshd's sftp-server holds an upload: `append` writes
    through that one descriptor (the client resuming), and the file is closed when the context ends."""

    CODE = (
        "import sys\nwith open(sys.argv[1], 'ab', buffering=0) as f:\n    print('open', flush=True)\n"
        "    for line in sys.stdin:\n        f.write(line.encode())\n        print('written', flush=True)\n"
    )

    def __init__(self, process: subprocess.Popen[str]) -> None:
        assert process.stdin is not None and process.stdout is not None
        self._stdin, self._stdout = process.stdin, process.stdout

    def append(self, line: str) -> None:
        """Write one line (ending in a line break) and return once it is in the file."""
        self._stdin.write(line)
        self._stdin.flush()
        assert self._stdout.readline() == "written\n"


@contextlib.contextmanager
def held_open_for_writing(path: Path) -> Iterator[HeldWriter]:
    """Another process with `path` open for appending until the context ends: an upload whose client stalled."""
    with subprocess.Popen(
        [sys.executable, "-c", HeldWriter.CODE, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None and process.stdin is not None
        try:
            assert process.stdout.readline() == "open\n"
            yield HeldWriter(process)
        finally:
            process.stdin.close()
            process.wait(timeout=30)
