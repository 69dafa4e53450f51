# The gateway image: the dependencies pinned in uv.lock, on Python 3.11, run as an unprivileged user.
#   docker build -t postgrest-gateway .
#   docker run --rm postgrest-gateway --help
# compose.yaml runs it twice: once as the one-shot `migrate` service, once as `gateway serve`.
FROM python:3.11-slim

# uv from PyPI, pinned to the version that wrote uv.lock, so `--locked` reads the lock as written.
RUN pip install --no-cache-dir uv==0.13.9

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    PATH=/app/.venv/bin:$PATH

WORKDIR /app

# Dependencies first, in a layer of their own: editing the code does not reinstall them.
# --locked: the build fails if uv.lock does not match pyproject.toml, instead of re-resolving.
# --extra redis: replicas of this image can share the sign-in rate limit (GATEWAY_REDIS_URL).
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --locked --no-dev --extra redis --no-install-project

# Then the project itself, installed as a regular (non-editable) package.
COPY gateway ./gateway
RUN uv sync --locked --no-dev --extra redis --no-editable

# uid 10001, not 1000: PostgREST's image runs as uid 1000 and mounts the same keys volume
# (read-only). The private keys there are mode 0600, so only this uid can read them, while the
# public jwks.json (0644) stays readable by PostgREST.
# /keys is created here, owned by that user: an empty named volume mounted on it copies this
# ownership, so the gateway can write its keystore without running as root.
# /data is the working directory: the embedded SQLite store (./gateway.db) lands there when no
# GATEWAY_DATABASE_URL is given.
# /sockets is where compose's PostgREST (uid 1000) creates its Unix socket for the gateway:
# writable by both uids, sticky so that neither can remove the other's files.
RUN useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin gateway \
    && mkdir -p /keys /data /sockets \
    && chown gateway:gateway /keys /data /sockets \
    && chmod 1777 /sockets

ENV GATEWAY_HOST=0.0.0.0 \
    GATEWAY_KEYS_DIR=/keys

USER 10001:10001
WORKDIR /data
EXPOSE 8000

# slim has no curl: ask /healthz with the standard library. Any non-2xx answer or no answer
# raises, and the non-zero exit marks the container unhealthy.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('GATEWAY_PORT', '8000'), timeout=2)"]

ENTRYPOINT ["gateway"]
CMD ["serve"]
