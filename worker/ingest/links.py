"""Links: one spelling of an article's address (lowercase scheme and host, default port and
fragment dropped, tracking parameters removed, query parameters sorted)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from worker.safetext import url_text

# ── links ────────────────────────────────────────────────────────────────────────────────────

TRACKING_PARAMS = {
    "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "twclid", "igshid",
    "mc_cid", "mc_eid", "_hsenc", "_hsmi", "mkt_tok", "oly_anon_id", "oly_enc_id", "vero_id",
    "ocid", "cmpid", "at_medium", "at_campaign", "at_custom1", "at_custom2", "at_custom3", "at_custom4",
}
_DEFAULT_PORTS = {"http": 80, "https": 443}


def is_tracking_param(name: str) -> bool:
    lowered = name.lower()
    return lowered.startswith("utm_") or lowered in TRACKING_PARAMS


def canonical_url(url: str | None) -> str | None:
    """One spelling of a link: the same article's links compare equal once canonical."""
    if not url or not url.strip():
        return None
    url = url_text(url)
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return url.strip()
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if not scheme or not host:
        return url.strip()
    netloc = host if port in (None, _DEFAULT_PORTS.get(scheme)) else f"{host}:{port}"  # no login: a link is shown
    query = urlencode(sorted((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not is_tracking_param(k)))
    return urlunsplit((scheme, netloc, parts.path or "/", query, ""))
