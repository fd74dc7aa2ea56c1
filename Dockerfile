# flowtly-sync: the sync daemon in a small image.
#   docker build -t flowtly-sync .
#   docker run -v flowtly-data:/data -p 8080:8080 \
#     -e FLOWTLY_SYNC_FLOWTLY__TOKEN=... flowtly-sync
# /data holds config.toml, the state store and any sandbox or CRM files. On the first start
# with no /data/config.toml, the default (sync/cli/container.toml: the real Flowtly, CSV files
# in /data/crm) is written there; edit it in the volume. Secrets come from the environment
# (FLOWTLY_SYNC_FLOWTLY__TOKEN, FLOWTLY_SYNC_DAEMON__WEBHOOK_SECRET), never from the image.
# The daemon runs as uid/gid 10001: a bind-mounted /data must be writable by it.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The package, installed from the source tree; the sources are not kept in the image.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY sync ./sync
COPY connectors ./connectors
RUN pip install --no-cache-dir . \
    && rm -rf /src

# An unprivileged user owning the data volume.
RUN groupadd --system --gid 10001 flowtly \
    && useradd --system --uid 10001 --gid flowtly --home-dir /data --shell /usr/sbin/nologin flowtly \
    && mkdir -p /data \
    && chown flowtly:flowtly /data

# Inside the container the endpoint must be reachable from outside it; the configuration
# is on the volume (written there with the defaults on the first start).
ENV FLOWTLY_SYNC_DAEMON__LISTEN=0.0.0.0:8080 \
    FLOWTLY_SYNC_CONFIG=/data/config.toml

WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
USER flowtly

# slim has no curl: ask /healthz with the interpreter (non-2xx raises, so the check fails).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]

# SIGTERM (docker stop) finishes the operations in flight and exits 0; give it time:
#   docker stop --time 40 ...
STOPSIGNAL SIGTERM
ENTRYPOINT ["python", "-m", "sync.cli.container"]
CMD ["daemon"]
