"""Feed dates written in another language ("Sáb, 05 Dez 2026 10:00:00 -0300").

feedparser reads English RFC 822 and ISO 8601 dates only; many Portuguese, Spanish, French,
German, Italian and Dutch feeds write their month and weekday names in their own language, and
their items were dated "now" (the moment they were polled). This reads the common shape, day
month year time [zone], with any of those languages' month names, full or abbreviated.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata

_MONTH_NAMES = {
    1: "jan janeiro enero ene janvier janv januar januari gennaio gen",
    2: "feb fev fevereiro febrero fevrier fevr februar februari febbraio",
    3: "mar marco marzo mars marz maerz maart mrt",
    4: "apr abr abril avril avr aprile",
    5: "may mai maio mayo mei maggio mag",
    6: "jun juin junho junio juni giugno giu",
    7: "jul juil juillet julho julio juli luglio lug",
    8: "aug ago agosto aout august augustus",
    9: "sep sept set setembro septiembre septembre september settembre",
    10: "oct out outubro octubre octobre okt oktober ott ottobre",
    11: "nov novembro noviembre novembre november",
    12: "dec dez dezembro dic diciembre decembre dezember december dicembre",
}
_MONTHS = {name: number for number, names in _MONTH_NAMES.items() for name in names.split()}

_DATE = re.compile(
    r"(?P<day>\d{1,2})\.?\s+(?:de\s+)?(?P<month>[^\W\d_]+)\.?,?\s+(?:de\s+)?(?P<year>\d{4}),?"
    r"(?:\s+(?:[^\W\d_]+\s+)?(?P<hour>\d{1,2})[:h](?P<minute>\d{2})(?::(?P<second>\d{2}))?)?"
    r"(?:\s*(?P<zone>[+-]\d{2}:?\d{2}|Z|UTC|GMT)\b)?",
    re.I,
)


def parse_localized_date(text: str) -> dt.datetime | None:
    """The date in `text` as an aware UTC datetime, or None if it holds no date of this shape;
    without a zone it is taken as UTC."""
    match = _DATE.search(text or "")
    if not match:
        return None
    month = _MONTHS.get(_plain(match["month"]))
    if month is None:
        return None
    try:
        local = dt.datetime(int(match["year"]), month, int(match["day"]), int(match["hour"] or 0),
                            int(match["minute"] or 0), int(match["second"] or 0), tzinfo=_zone(match["zone"]))
    except ValueError:  # 31 Fev, 25:00
        return None
    return local.astimezone(dt.timezone.utc)


def _plain(name: str) -> str:
    """'Março' → 'marco', 'Févr' → 'fevr': lower case without accents."""
    return "".join(c for c in unicodedata.normalize("NFKD", name.lower()) if not unicodedata.combining(c))


def _zone(zone: str | None) -> dt.timezone:
    if not zone or zone.upper() in ("Z", "UTC", "GMT"):
        return dt.timezone.utc
    sign = -1 if zone[0] == "-" else 1
    digits = zone[1:].replace(":", "")
    return dt.timezone(sign * dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
