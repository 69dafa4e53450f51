"""Settings for the keystore tests: a keystore in the test's folder that rotates at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.settings import Settings
from gateway.tokens import ensure_keystore


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Keys in ``tmp_path/keys``; ``jwks_max_age=0`` so a next key may be promoted at once."""
    values: dict[str, Any] = {"keys_dir": str(tmp_path / "keys"), "jwks_max_age": 0}
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """:func:`make_settings`, with the keystore created."""
    config = make_settings(tmp_path)
    ensure_keystore(config)
    return config
