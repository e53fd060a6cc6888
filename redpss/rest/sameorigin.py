"""Whether a browser sends a request from another site's page: the one rule of the REST API's changing requests
and the console's login and logout, which carry no token of their own to check."""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import Request


def another_site(request: Request, *, null_origin_is_ours: bool = False) -> str:
    """What shows that a browser sends this request from another site's page ("" when nothing does): its
    Sec-Fetch-Site, or an Origin that is not this server. Scripts send neither header. Browsers without
    Sec-Fetch-Site (Chromium before 76, Firefox before 90) send `Origin: null` from a no-referrer page of this server
    too: with `null_origin_is_ours` (the console's pages are such) that passes."""
    fetch_site = request.headers.get("sec-fetch-site", "")
    if fetch_site in ("cross-site", "same-site"):
        return f"Sec-Fetch-Site: {fetch_site}"
    if fetch_site == "same-origin":
        # the browser's own word, which no page can set; behind a proxy that rewrites Host, Origin and Host differ
        # for this server's own pages
        return ""
    origin = request.headers.get("origin")
    if origin is None or (null_origin_is_ours and origin == "null"):
        return ""
    try:
        origin_host = urlsplit(origin).netloc.lower()
    except ValueError:  # `http://[` and the like: no origin of this server
        return f"Origin: {origin[:100]} (not a URL)"
    if origin_host != request.headers.get("host", "").lower():
        return f"Origin: {origin[:100]}"
    return ""
