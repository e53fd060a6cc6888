"""Web console: time to first render and page weight of the overview and of a 1,000-job table, beside the same data
as the REST API's JSON, in the same browser, same run.

Ours: the console's pages (`/console/` and `/console/jobs`) of a temporary instance with devdb, SCHED and JMON
running and 1,000 jobs in APP1.ADM_JOBS, served by the real API (gunicorn, TLS), logged in as a reader.
Anchor: the API's JSON for the same data (`/api/v1/status` and `/api/v1/jobs`, HTTP Basic), which Chromium shows as
text. Both are loaded by Debian's headless Chromium (playwright), one fresh navigation after the other, alternating;
the figure is the median of the rounds of:
- first contentful paint (ms since the navigation began: request, server time, transfer, parse, first paint),
- bytes transferred (the document and every resource it loads, as the browser counts them: compressed if sent so).

    .venv/bin/python bench/bench_console.py [--rounds 7] [--workers 2]

The CPUs are shared by the servers, the browser and whatever else runs: compare the ratio, not absolute figures.
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("EXASOL_TELEMETRY_DISABLE", "1")

from bench.bench_rest import JOBS, add_jobs  # noqa: E402
from tests.console.conftest import CHROMIUM, browser_missing  # noqa: E402
from tests.rest.rest_instance import READER, rest_instance  # noqa: E402

TIMING = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const paint = performance.getEntriesByName('first-contentful-paint')[0];
  const resources = performance.getEntriesByType('resource').reduce((sum, r) => sum + r.transferSize, 0);
  return {fcp: paint ? paint.startTime : null, load: nav.loadEventEnd, bytes: nav.transferSize + resources,
          server: nav.responseStart - nav.requestStart};
}"""


def measure(page: Any, url: str) -> dict[str, float]:
    page.goto("about:blank")
    page.goto(url, wait_until="load")
    page.wait_for_function("() => performance.getEntriesByName('first-contentful-paint').length > 0")
    timing: dict[str, float] = page.evaluate(TIMING)
    return timing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    missing = browser_missing()
    if missing:
        print(f"bench_console: {missing}", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    work = Path(tempfile.mkdtemp(prefix="bench-console-"))
    home = work / "redsys"
    home.mkdir()
    os.environ["REDHOME"] = str(home)
    try:
        with rest_instance(home, work, gu_workers=str(args.workers)) as (running, api), sync_playwright() as driver:
            add_jobs(running, JOBS)
            running.redctl("reload")
            browser = driver.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
            token = base64.b64encode(f"{READER[0]}:{READER[1]}".encode()).decode()
            basic = {"Authorization": f"Basic {token}"}
            json_side = browser.new_context(ignore_https_errors=True, extra_http_headers=basic)
            console_side = browser.new_context(ignore_https_errors=True)
            page = console_side.new_page()
            page.goto(f"{api.base}/console/login")
            page.get_by_label("User").fill(READER[0])
            page.get_by_label("Password").fill(READER[1])
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url(f"{api.base}/console/")
            rows = page.goto(f"{api.base}/console/jobs")
            assert rows is not None and rows.ok and page.locator("table#jobs tbody tr").count() == JOBS
            json_page = json_side.new_page()
            pairs = {
                "overview": (f"{api.base}/console/", f"{api.base}/api/v1/status"),
                f"{JOBS:,}-job table": (f"{api.base}/console/jobs", f"{api.base}/api/v1/jobs"),
            }
            print(f"bench_console: {args.rounds} rounds, {args.workers} workers, Chromium {browser.version}, medians")
            print(f"{'page':<16} {'side':<14} {'first paint ms':>15} {'server ms':>10} {'load ms':>9} {'bytes':>10}")
            for name, (ours, anchor) in pairs.items():
                figures: dict[str, list[dict[str, float]]] = {"console (HTML)": [], "API (JSON)": []}
                for _ in range(args.rounds):
                    figures["console (HTML)"].append(measure(page, ours))
                    figures["API (JSON)"].append(measure(json_page, anchor))
                for side, runs in figures.items():
                    med = {key: statistics.median(r[key] for r in runs) for key in ("fcp", "server", "load", "bytes")}
                    print(f"{name:<16} {side:<14} {med['fcp']:>15.1f} {med['server']:>10.1f} {med['load']:>9.1f} "
                          f"{med['bytes']:>10.0f}")  # fmt: skip
            browser.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
