"""Make the virtualenv's console scripts /bin/sh scripts that exec the virtualenv's Python on themselves.

    python rpm/shebang.py BINDIR INTERPRETER

Used by rpm/redpss.spec: a console script whose first line is `#!INTERPRETER` (the venv's bin/python, a path under
/app that no system package provides) gets the three-line head pip itself writes when a shebang cannot name the
interpreter directly:

    #!/bin/sh
    '''exec' INTERPRETER "$0" "$@"
    ' '''

/bin/sh runs the second line (exec the interpreter on this file with the same arguments: same PID, same argv as a
direct shebang gives); for Python the two lines are one string literal, so the rest of the script runs unchanged.
"""

import sys
from pathlib import Path


def sh_head(interpreter: str) -> str:
    return f"#!/bin/sh\n'''exec' {interpreter} \"$0\" \"$@\"\n' '''\n"


def main() -> int:
    bindir, interpreter = Path(sys.argv[1]), sys.argv[2]
    wanted = {f"#!{interpreter}", f"#!{interpreter}3", f"#!{interpreter}3.11"}
    changed = 0
    for script in sorted(bindir.iterdir()):
        if script.is_symlink() or not script.is_file():
            continue
        text = script.read_bytes()
        first, _, rest = text.partition(b"\n")
        if first.decode(errors="replace").rstrip() not in wanted:
            continue
        script.write_bytes(sh_head(interpreter).encode() + rest)
        changed += 1
    print(f"{changed} console scripts start through /bin/sh")
    return 0 if changed else 1


if __name__ == "__main__":
    sys.exit(main())
