"""Where the gateway's time goes under load: a py-spy profile, summed by function and package."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench.proxy.machine import REPO_ROOT
from bench.proxy.measure import Wrk, wrk_command
from bench.proxy.progress import BenchFailed, step
from bench.proxy.scenarios import Scenario
from bench.proxy.targets import Stack, gateway_pid

PROFILE_RATE = 200
FLAME_SECONDS = 15


def find_py_spy(explicit: str | None) -> str | None:
    if explicit:
        return explicit
    found = shutil.which("py-spy")
    if found:
        return found
    candidate = Path("/tmp/pyspy/bin/py-spy")  # noqa: S108 - where the docs say to install it
    return str(candidate) if candidate.exists() else None


# Paths as short_frame() spells them: relative to site-packages, the repository or the stdlib.
CATEGORIES: tuple[tuple[str, str], ...] = (
    ("gateway/proxy/", "gateway: the /rest mount (gateway/proxy)"),
    ("gateway/front_door", "gateway: the server's dispatch (gateway/web/front_door.py)"),
    ("gateway/client_address", "gateway: client address (gateway/asgi/client_address.py)"),
    ("gateway/request_log", "gateway: RequestLog middleware"),
    ("gateway/", "gateway: other"),
    ("aiohttp/", "aiohttp: the upstream HTTP client"),
    ("yarl/", "yarl, multidict (URLs, header dicts)"),
    ("multidict/", "yarl, multidict (URLs, header dicts)"),
    ("litestar/", "Litestar: app, middleware stack, routing"),
    ("granian/", "Granian: the Python side of its ASGI bridge, and the event loop"),
    ("ipaddress.py", "stdlib ipaddress"),
    ("logging/", "stdlib logging"),
    ("asyncio/", "asyncio"),
    ("secrets.py", "stdlib secrets, random (request ids)"),
    ("random.py", "stdlib secrets, random (request ids)"),
    ("jwt/", "token verification (PyJWT, cryptography)"),
    ("cryptography/", "token verification (PyJWT, cryptography)"),
)


def category(short: str) -> str:
    path = short.rpartition(" (")[2]
    for prefix, name in CATEGORIES:
        if path.startswith(prefix):
            return name
    return f"other ({path.rstrip(')')})"


def short_frame(frame: str) -> str:
    """``f (aiohttp/client.py)`` out of py-spy's ``f (/…/site-packages/aiohttp/client.py:12)``."""
    match = re.match(r"^(.*) \((.*?)(?::\d+)?\)$", frame)
    if not match:
        return frame
    name, path = match.groups()
    if "site-packages/" in path:
        path = path.split("site-packages/", 1)[1]
    elif path.startswith(str(REPO_ROOT) + "/"):
        path = path[len(str(REPO_ROOT)) + 1 :]
    elif re.search(r"/lib/python3\.\d+/", path):
        path = re.split(r"/lib/python3\.\d+/", path, maxsplit=1)[1]
    return f"{name} ({path})"


PROXY_PATH_FILES = ("gateway/", "aiohttp/", "litestar/", "granian/asgi", "ipaddress.py")


@dataclass(frozen=True)
class Profile:
    samples: int
    possible: int
    self_top: list[tuple[str, int]]
    inclusive_top: list[tuple[str, int]]
    categories: list[tuple[str, int]]
    inclusive: dict[str, int]

    def share(self, *, category_name: str = "", function: str = "") -> float:
        """Share of the samples in a category (by name) or inside a function (by prefix)."""
        if category_name:
            count = dict(self.categories).get(category_name, 0)
        else:
            count = sum(n for name, n in self.inclusive.items() if name.startswith(function))
        return count / max(1, self.samples)


def parse_collapsed(text: str, possible: int, top: int = 15) -> Profile:
    self_counts: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    categories: Counter[str] = Counter()
    samples = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        # --subprocesses prefixes "process N:…" frames; they are not code.
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        samples += count
        leaf = short_frame(frames[-1])
        self_counts[leaf] += count
        categories[category(leaf)] += count
        for name in {short_frame(f) for f in frames}:
            inclusive[name] += count
    proxy_path = [
        (name, n)
        for name, n in inclusive.most_common()
        if any(f"({p}" in name for p in PROXY_PATH_FILES)
        and not name.startswith("<module>")
        and "gateway/cli" not in name
        and "granian/server" not in name
    ]
    return Profile(
        samples=samples,
        possible=possible,
        self_top=self_counts.most_common(top),
        inclusive_top=proxy_path[:top],
        categories=categories.most_common(),
        inclusive=dict(inclusive),
    )


def take_profile(
    py_spy: str, wrk: Wrk, stack: Stack, scenario: Scenario, *, seconds: int
) -> Profile:
    """py-spy on the gateway (warning) in front of the last upstream, under ``scenario``."""
    deployment = stack.deployments[-1]
    base = deployment.gateways["warning"]
    output = stack.workdir / "profile.txt"
    load = subprocess.Popen(  # noqa: S603 - the wrk found on PATH
        wrk_command(wrk, f"{base}/rest{scenario.path}", scenario=scenario, seconds=seconds + 3),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1)
        result = subprocess.run(  # noqa: S603 - py-spy as found or given
            [
                py_spy,
                *("record", "--pid", str(gateway_pid(base)), "--subprocesses"),
                # Only the thread holding the GIL: idle pool threads are not work, and py-spy's
                # idle detection alone counts some of them.
                *("--gil", "--function", "--full-filenames", "--rate", str(PROFILE_RATE)),
                *("--duration", str(seconds), "--format", "raw", "--output", str(output)),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        load.wait(timeout=seconds + 30)
    if result.returncode != 0 or not output.exists():
        raise BenchFailed(f"py-spy failed ({result.returncode}): {result.stderr.strip()[-800:]}")
    return parse_collapsed(output.read_text(), possible=PROFILE_RATE * seconds)


def flame_graph(
    py_spy: str, wrk: Wrk, stack: Stack, scenario: Scenario, *, seconds: int, output: str
) -> str:
    """A py-spy flame graph (SVG) of the gateway (warning) in front of the last upstream under
    ``scenario``; returns the path written."""
    deployment = stack.deployments[-1]
    base = deployment.gateways["warning"]
    target = Path(output).resolve()
    load = subprocess.Popen(  # noqa: S603 - the wrk found on PATH
        wrk_command(wrk, f"{base}/rest{scenario.path}", scenario=scenario, seconds=seconds + 3),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1)
        result = subprocess.run(  # noqa: S603 - py-spy as found or given
            [
                py_spy,
                *("record", "--pid", str(gateway_pid(base)), "--subprocesses"),
                # As the profile: only the thread holding the GIL, so idle threads are no bars.
                *("--gil", "--rate", str(PROFILE_RATE), "--duration", str(seconds)),
                *("--format", "flamegraph", "--output", str(target)),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        load.wait(timeout=seconds + 30)
    if result.returncode != 0 or not target.exists():
        raise BenchFailed(f"py-spy failed ({result.returncode}): {result.stderr.strip()[-800:]}")
    # py-spy writes the absolute paths of this machine; the repository's are enough.
    text = re.sub(r"[^\s;\"'<>()]*site-packages/", "", target.read_text())
    text = re.sub(r"[^\s;\"'<>()]*/lib/python3\.\d+/", "", text)
    target.write_text(text.replace(str(REPO_ROOT) + "/", ""))
    return str(target)


def profile_if_asked(
    seconds: int, py_spy: str | None, wrk: Wrk, stack: Stack, scenario: Scenario
) -> tuple[Profile | None, str]:
    """With ``seconds``, the profile; else, or when it cannot be taken, the report's note why."""
    if not seconds:
        return None, "Not taken (run with `--profile 8`)."
    found = find_py_spy(py_spy)
    if found is None:
        return None, (
            "Not taken: py-spy was not found (`python3 -m pip install --target "
            "/tmp/pyspy py-spy`, or --py-spy PATH)."
        )
    step(f"profiling the gateway with py-spy for {seconds} s")
    try:
        return take_profile(found, wrk, stack, scenario, seconds=seconds), ""
    except BenchFailed as exc:
        return None, f"Not taken: {exc}"
