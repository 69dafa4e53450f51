"""nginx as a plain reverse proxy in front of PostgREST: the reference bench/proxy/ compares with.

It forwards ``/rest/`` to PostgREST over pooled keep-alive connections and does nothing else:
no token check, no header rules, no access log. That is the floor any proxy in Python is
measured against. Debian: ``apt-get install nginx-light``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.postgres import free_port


class NginxDidNotStart(Exception):
    pass


CONFIG = """\
worker_processes 1;
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
{user}
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    upstream postgrest {{
        server {upstream};
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port};
        location /rest/ {{
            proxy_pass http://postgrest/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}
}}
"""


def nginx_binary() -> str | None:
    return shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )


def nginx_version(binary: str) -> str:
    output = subprocess.run(  # noqa: S603 - the nginx found on PATH
        [binary, "-v"], capture_output=True, text=True, check=False
    )
    return (output.stderr or output.stdout).strip().removeprefix("nginx version: ")


@contextmanager
def run_nginx(binary: str, upstream_url: str, folder: Path) -> Iterator[tuple[str, int]]:
    """nginx (one worker) proxying ``/rest/`` to ``upstream_url``; yields (base URL, pid)."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = folder / "nginx.conf"
    config.write_text(
        CONFIG.format(
            folder=folder,
            upstream=upstream_url.removeprefix("http://").rstrip("/"),
            port=port,
            # As root nginx would hand its workers to "nobody", who cannot use this folder.
            user="user root;" if os.geteuid() == 0 else "",
        )
    )
    process = subprocess.Popen(  # noqa: S603 - the nginx found on PATH
        [binary, "-p", str(folder), "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            if process.poll() is not None:
                error = process.stderr.read().decode() if process.stderr else ""
                raise NginxDidNotStart(f"nginx exited with {process.returncode}: {error.strip()}")
            try:
                httpx.get(f"{base_url}/", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise NginxDidNotStart("nginx did not answer within 10 s") from None
                time.sleep(0.05)
        yield base_url, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
