"""Text from outside (feed titles, authors, OPML names, servers' error messages) made safe to show
on a terminal, in a digest or an email header: one line, no control characters, no bidi controls.

An ESC in a feed's title ("Pub&#x1b;]0;PWNED&#x7;&#x1b;[2J") would set a terminal's title and clear
its screen when `status` prints it; U+202E would show a name backwards. Cleaned once, where the
text enters (parse, OPML, the stored error), so every output shows the same clean text.
"""

from __future__ import annotations

import re
from urllib.parse import quote

# C0 and C1 controls (tabs and line breaks too: a label is one line), the Unicode line and
# paragraph separators, and the bidirectional embeddings, overrides and isolates.
# Not the implicit marks (U+200E, U+200F, U+061C): Hebrew and Arabic text is written with them.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]+")


def has_unsafe(text: str) -> bool:
    """Whether `text` holds a character `one_line` would replace (a config value, an address)."""
    return _UNSAFE.search(text) is not None


def url_text(url: str) -> str:
    """A URL with its unsafe characters percent-encoded (a link is kept, and shown inert)."""
    return _UNSAFE.sub(lambda m: quote(m.group(), safe=""), url)


def one_line(text: str) -> str:
    """`text` with its unsafe characters turned into spaces, and its spaces collapsed."""
    return " ".join(_UNSAFE.sub(" ", text).split())


# "scheme://user:password@" anywhere in a text: the password is what must not be shown.
# Spaces too: an address stored before they were refused may have one in its login.
# The user name may hold an "@" too (me@example.org:PASSWORD@host): it ends at the first ":".
_PASSWORD = re.compile(r"(?<=://)([^/?#:]*):[^/?#]*@")  # to the authority's last "@", as urlsplit reads it
MASKED = "****"


def address_without_password(url: str) -> str:
    """One address (not a text holding some) with any password masked, even one a URL parser
    would misread ("http://me:pa/ss@host": an unencoded "/" in it): from the login's first ":"
    to the address's last "@"."""
    scheme, sep, rest = url.partition("://")
    login, at, host = rest.rpartition("@")
    if not (sep and at and ":" in login):
        return without_password(url)
    return f"{scheme}{sep}{login.partition(':')[0]}:{MASKED}@{host}"


def without_password(text: str) -> str:
    """`text` with the password of every URL in it masked ("https://reader:****@host/feed");
    the user name stays, so a reader knows which login is used. Feed URLs may carry a login
    (https://reader:PASSWORD@host/feed): the store keeps it for the requests, outputs never show it."""
    return _PASSWORD.sub(rf"\1:{MASKED}@", text) if "@" in text else text
