"""Access tokens per second per core: signing, verifying, and verifying a token seen before.

    uv run python bench/tokens.py [--seconds 2]

In this process, on one thread, so the rates are per core: for each algorithm the gateway
supports, a fresh keystore in a temporary folder, then signing tokens shaped exactly as the
gateway issues them (``build_access_claims``), verifying distinct tokens
(``verify_access_token``: what a token costs the first time), and verifying one token over and
over through the proxy's cache (``VerifiedTokens``: what a client that reuses its token costs).
CPU time is ``time.process_time``. ``python -m bench.proxy`` runs this too and puts it in its
report.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from gateway.proxy.token_cache import VerifiedTokens  # noqa: E402
from gateway.settings import Settings  # noqa: E402
from gateway.tokens.claims import Identity, build_access_claims  # noqa: E402
from gateway.tokens.keystore import ensure_keystore  # noqa: E402
from gateway.tokens.signing import (  # noqa: E402
    KeyRing,
    load_keyring,
    sign_access_token,
    verify_access_token,
)

ALGORITHMS: tuple[str, ...] = get_args(Settings.model_fields["signing_alg"].annotation)
IDENTITY = Identity(
    user_id=4_503_599_627_370_497,
    email="bench@example.com",
    status="active",
    db_role="authenticated",
    organization_id=2_251_799_813_685_249,
    org_name="Bench",
    org_role="org_admin",
)
TARGET_CACHED_US = 10.0


@dataclass(frozen=True)
class TokenRates:
    alg: str
    sign_per_s: float
    verify_per_s: float
    cached_verify_us: float
    token_bytes: int


def per_cpu_second(action: Callable[[], Any], seconds: float) -> float:
    """Calls of ``action`` per second of this process's CPU time, over about ``seconds``."""
    calls = 0
    started = time.process_time()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for _ in range(20):
            action()
        calls += 20
    return calls / max(1e-9, time.process_time() - started)


def rates_for(alg: str, seconds: float) -> TokenRates:
    with tempfile.TemporaryDirectory(prefix="gateway-bench-tokens-") as folder:
        settings = Settings(
            _env_file=None,
            keys_dir=str(Path(folder) / "keys"),
            signing_alg=alg,
        )
        ensure_keystore(settings)
        ring: KeyRing = load_keyring(settings)

    def claims() -> dict[str, Any]:
        return build_access_claims(
            IDENTITY,
            settings=settings,
            session_id="bench",
            now=int(time.time()),
            not_after=int(time.time()) + 86400,
        )

    sign_rate = per_cpu_second(lambda: sign_access_token(ring, claims()), seconds)
    # Distinct tokens (each claims() has its own jti), as a gateway sees new ones.
    tokens = [sign_access_token(ring, claims()) for _ in range(2000)]
    position = iter(range(10**9))

    def verify_next() -> None:
        verify_access_token(
            ring,
            tokens[next(position) % len(tokens)],
            issuer=settings.issuer,
            allowed_roles=settings.allowed_roles,
        )

    verify_rate = per_cpu_second(verify_next, seconds)
    cache = VerifiedTokens(
        size=1000,
        issuer=settings.issuer,
        audience=None,
        allowed_roles=settings.allowed_roles,
        anon_role=settings.anon_role,
    )
    cache.verify(ring, tokens[0])
    cached_rate = per_cpu_second(lambda: cache.verify(ring, tokens[0]), seconds)
    return TokenRates(
        alg=alg,
        sign_per_s=sign_rate,
        verify_per_s=verify_rate,
        cached_verify_us=1e6 / cached_rate,
        token_bytes=len(tokens[0]),
    )


def measure(seconds: float, algorithms: Sequence[str] = ALGORITHMS) -> list[TokenRates]:
    return [rates_for(alg, seconds) for alg in algorithms]


def table(rates: Sequence[TokenRates]) -> list[str]:
    lines = [
        "| algorithm | signed per s per core | verified per s per core (new token) "
        "| repeat token through the cache | token size |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for r in rates:
        verdict = "meets" if r.cached_verify_us <= TARGET_CACHED_US else "misses"
        lines.append(
            f"| {r.alg} | {r.sign_per_s:,.0f} | {r.verify_per_s:,.0f} "
            f"| {r.cached_verify_us:.2f} µs ({verdict} ≤ {TARGET_CACHED_US:g} µs) "
            f"| {r.token_bytes} bytes |"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement (2)")
    args = parser.parse_args(argv)
    print("\n".join(table(measure(args.seconds))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
