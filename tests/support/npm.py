"""Install one pinned npm package (with its whole locked tree) into ``.cache/``, offline after.

``npm ci`` installs exactly a committed ``package-lock.json`` and refuses any package whose
sha512 differs; ``--ignore-scripts`` runs no install script. The cache folder is named after the
lockfile, so a changed pin installs afresh. Without node or npm the caller's test fails with a
message naming what to install: it never skips.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


class NpmPackageMissing(Exception):
    """The package is neither cached nor installable; the message says what to do."""


@dataclass(frozen=True)
class PinnedPackage:
    name: str
    version: str
    #: The registry's dist.integrity for exactly this version; the lockfile must say the same.
    integrity: str
    #: The folder holding package.json and package-lock.json (and the scripts that use it).
    source: Path
    #: What the tests need it for, for the failure message.
    purpose: str

    def installed(self) -> Path:
        """The folder whose node_modules holds the package, installed on first use."""
        lock = (self.source / "package-lock.json").read_bytes()
        folder = REPO_ROOT / ".cache" / self.source.name / hashlib.sha256(lock).hexdigest()[:16]
        if not (folder / "node_modules" / self.name / "package.json").is_file():
            self._install(folder, lock)
        return folder

    def _install(self, target: Path, lock: bytes) -> None:
        pinned = json.loads(lock)["packages"].get(f"node_modules/{self.name}", {})
        if (pinned.get("version"), pinned.get("integrity")) != (self.version, self.integrity):
            raise NpmPackageMissing(
                f"{self.source / 'package-lock.json'} does not pin {self.name} {self.version} "
                "with its registry sha512; not installed."
            )
        npm = shutil.which("npm")
        if npm is None or shutil.which("node") is None:
            raise NpmPackageMissing(
                f"{self.purpose} need Node.js 20 or later with npm, to install {self.name} "
                f"{self.version} from the npm registry into {target}; 'node' or 'npm' is not "
                "on PATH. Install Node.js (apt-get install nodejs npm)."
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
        try:
            for name in ("package.json", "package-lock.json"):
                shutil.copyfile(self.source / name, partial / name)
            result = subprocess.run(
                [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--omit=dev"],
                cwd=partial,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            if result.returncode != 0:
                raise NpmPackageMissing(
                    f"npm ci could not install {self.name} {self.version} into {target} "
                    f"(is the npm registry reachable?):\n{result.stderr[-2000:]}"
                )
            try:
                partial.rename(target)
            except OSError:
                if not target.is_dir():
                    raise
        finally:
            shutil.rmtree(partial, ignore_errors=True)
