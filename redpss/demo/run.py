"""redpss-demo: a throw-away instance in a temporary REDHOME, its validated config, and its daemons in the
foreground with their journald-style log lines; after `--seconds` it stops them with SIGTERM like systemd would.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from redpss.core.config import Config, load_config, render_config
from redpss.core.paths import InstancePaths, create_instance_tree

DEMO_INSTANCE = "DEMO1"


def create_demo_instance(redhome: Path) -> InstancePaths:
    """The demo instance's tree and a config with a demo password, mode 0600 as RED-PSS demands."""
    paths = InstancePaths.for_instance(DEMO_INSTANCE, redhome)
    create_instance_tree(paths)
    paths.config_file.write_text(render_config({"DEFAULT": {"exa_password": "demo-only-password"}}))
    paths.config_file.chmod(0o600)
    return paths


def show_config(config: Config) -> None:
    print(f"== validated configuration: {config.path}")
    for section_name in ("default", "redctl", "rest"):
        section = getattr(config, section_name)
        shown = ", ".join(f"{k}={v}" for k, v in vars(section).items() if not k.startswith("sendmail_smtp"))
        print(f"   [{section_name}] {shown}")


def run_daemon_for(paths: InstancePaths, seconds: float) -> int:
    """Start redpss-heartbeat for the instance, let it run, stop it with SIGTERM; return its exit code."""
    env = {**os.environ, **paths.environment()}
    command = [sys.executable, "-m", "redpss.demo.heartbeat", "--interval", "1", "--work-seconds", "1.5"]
    print(f"== starting {' '.join(command[2:])} for {paths.redenv} (stops after {seconds:.0f} s with SIGTERM)")
    sys.stdout.flush()
    process = subprocess.Popen(command, env=env)
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.2)  # the demo's own pacing, not synchronisation
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        return process.wait(timeout=60)
    except KeyboardInterrupt:
        process.send_signal(signal.SIGINT)
        return process.wait(timeout=60)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="redpss-demo", description=__doc__)
    parser.add_argument("--seconds", type=float, default=8.0, help="how long the daemons run (default 8)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary REDHOME and print its path")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="redpss-demo-") as tmp:
        redhome = Path(tmp) / "redsys"
        paths = create_demo_instance(redhome)
        print(f"== instance {paths.redenv} created in REDHOME={redhome}")
        for folder in sorted(p for p in paths.home.rglob("*") if p.is_dir()):
            print(f"   {folder.relative_to(paths.home)}/  ({folder.stat().st_mode & 0o7777:04o})")
        show_config(load_config(paths.config_file))
        code = run_daemon_for(paths, args.seconds)
        print(f"== daemon exited with code {code}; its log file {paths.log_file('heartbeat')} holds:")
        print(paths.log_file("heartbeat").read_text().rstrip())
        if args.keep:
            kept = Path(tempfile.mkdtemp(prefix="redpss-demo-kept-"))
            redhome.rename(kept / "redsys")
            print(f"== kept REDHOME at {kept / 'redsys'}")
        return code


if __name__ == "__main__":
    raise SystemExit(main())
