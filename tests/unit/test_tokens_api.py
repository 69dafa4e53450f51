"""The public surface of ``gateway.tokens`` cannot drift silently."""

from __future__ import annotations

import gateway.tokens


def test_all_lists_exactly_the_public_names_of_the_package() -> None:
    public = {
        name
        for name, value in vars(gateway.tokens).items()
        if not name.startswith("_") and not isinstance(value, type(gateway.tokens))
    } - {"annotations"}

    assert set(gateway.tokens.__all__) == public
