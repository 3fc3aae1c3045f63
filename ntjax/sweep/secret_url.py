"""A storage URL's password stays out of sight: masked wherever it is printed or stored, and handed to
worker processes through their environment, never their command line (which `ps` shows to every user)."""
from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

ENV_VAR = "NTJAX_SWEEP_STORAGE"


def has_password(url: str) -> bool:
    try:
        return bool(urlsplit(url).password)
    except ValueError:
        return False


def mask(url: str) -> str:
    """`postgresql://user:***@host/db` for `postgresql://user:secret@host/db`; other URLs unchanged."""
    if not has_password(url):
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    netloc = f"{parts.username or ''}:***@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
