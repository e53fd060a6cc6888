"""Replace identical regular files under a folder by hard links to one of them (rpm keeps hard links).

    python rpm/hardlink.py DIR

Used by rpm/redpss.spec on the virtualenv: wheels repeat licence files and bundled libraries.
"""

import hashlib
import os
import sys
from pathlib import Path


def main() -> int:
    first: dict[tuple[int, str, int], Path] = {}
    linked = 0
    for path in sorted(Path(sys.argv[1]).rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        st = path.stat()
        if st.st_size < 1024:
            continue
        key = (st.st_size, hashlib.sha256(path.read_bytes()).hexdigest(), st.st_mode)
        original = first.setdefault(key, path)
        if original != path:
            tmp = path.with_name(path.name + ".hardlink-tmp")
            os.link(original, tmp)
            tmp.replace(path)
            linked += 1
    print(f"hard-linked {linked} duplicate files")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
