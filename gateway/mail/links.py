"""The link in a mail: ``{GATEWAY_LINK_BASE_URL}/<page>?token=<token>``, built from parts."""

from __future__ import annotations

import re

from yarl import URL

# A page is one path segment of our own choosing, never user input; checked all the same, so a
# slip cannot turn a link into another path or host.
_PAGE = re.compile(r"^[a-z][a-z0-9-]{0,62}$")


def build_link(*, base_url: str, page: str, token: str | None) -> str:
    """The absolute link to ``page`` under ``base_url``, with ``?token=`` when a token is given.

    ``base_url`` is an absolute http(s) URL without query or fragment (the setting is checked at
    start-up); its path is kept, so ``https://app.example.com/account`` and ``verify-email`` give
    ``https://app.example.com/account/verify-email?token=…``.
    """
    if not _PAGE.match(page):
        raise ValueError(f"not a page name: {page!r}")
    url = URL(base_url)
    if url.query_string or url.fragment or not url.is_absolute():
        raise ValueError("the link base must be an absolute URL without query or fragment")
    url = url.with_path(url.path.rstrip("/") + "/" + page)
    if token is not None:
        url = url.with_query(token=token)
    return str(url)
