"""The keystore's files: their names, their modes and the pattern of a key file's name."""

from __future__ import annotations

import re
from typing import Final

MANIFEST_NAME: Final = "manifest.json"
JWKS_NAME: Final = "jwks.json"

KEY_FILE: Final = re.compile(r"^[A-Za-z0-9_-]{16,64}\.pem$")
PRIVATE_MODE: Final = 0o600
# The directory and the public files stay readable by others (subject to the umask): PostgREST
# often runs as another user and reads jwks.json; the private keys are 0600 each.
DIRECTORY_MODE: Final = 0o755
PUBLIC_MODE: Final = 0o644
