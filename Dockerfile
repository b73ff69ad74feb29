# syntax=docker/dockerfile:1
#
# rollbot's production image:  docker build -t rollbot .
#
# Three stages. `pgdg-key` fetches and checks the PostgreSQL apt repository's signing key;
# `builder` turns the source into a virtualenv; `runtime` gets only that virtualenv, the
# PostgreSQL client tools and the runbooks: no compilers, no source tree, no build cache.

# Both Python stages must use the same image: the virtualenv is copied between them as is.
ARG PYTHON_VERSION=3.11
# pg_dump must be at least as new as the newest server rollbot backs up (rollbot refuses an
# older one), so the client follows the newest major version we support, not Debian's.
ARG PG_MAJOR=18


FROM python:${PYTHON_VERSION}-slim-bookworm AS pgdg-key
# The key comes out of Debian's own postgresql-common package, so it reaches us through an
# archive apt already verifies, and is then pinned to its published fingerprint. The package
# is unpacked, not installed: nothing here runs its scripts or pulls its dependencies.
ARG PGDG_KEY_FINGERPRINT=B97B0AFCAA1A47F044F244A07FCC7D46ACCC4CF8
# pipefail: a failed download or gpg must fail the build, not feed an empty pipe.
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /tmp/pgdg
# Debian's point releases replace package versions; a pinned gpg would break the build.
# hadolint ignore=DL3008
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends gpg; \
    chown _apt /tmp/pgdg; \
    apt-get download postgresql-common; \
    dpkg-deb --fsys-tarfile postgresql-common_*.deb \
        | tar -x --strip-components=5 ./usr/share/postgresql-common/pgdg/apt.postgresql.org.asc; \
    found="$(GNUPGHOME="$(mktemp -d)" gpg --batch --show-keys --with-colons apt.postgresql.org.asc \
        | awk -F: '$1 == "fpr" { print $10 }')"; \
    test "$found" = "$PGDG_KEY_FINGERPRINT"; \
    install -D -m 0644 apt.postgresql.org.asc /out/pgdg.asc


FROM python:${PYTHON_VERSION}-slim-bookworm AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# No pip inside the virtualenv: the image installs nothing at run time. The image's own pip
# installs into it with --python.
RUN python -m venv --without-pip /opt/venv
# Exactly what building the wheel needs (README.md is the package's long description).
COPY pyproject.toml README.md ./
COPY bot/ bot/
# A wheel, then a plain install of it: the virtualenv holds rollbot and its runtime
# dependencies only (not the `embedded` or `dev` extras) and no link back to /src.
RUN --mount=type=cache,target=/root/.cache/pip \
    set -eux; \
    python -m pip wheel --no-deps --wheel-dir /tmp/wheels .; \
    python -m pip --python /opt/venv/bin/python install /tmp/wheels/rollbot-*.whl; \
    /opt/venv/bin/rollbot --version


FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
ARG PG_MAJOR

# PostgreSQL client tools from the PGDG repository, signed by the key checked above.
COPY --from=pgdg-key /out/pgdg.asc /usr/share/keyrings/pgdg.asc
# The major version is pinned (PG_MAJOR); PGDG drops older minor releases from its index.
# hadolint ignore=DL3008
RUN set -eux; \
    . /etc/os-release; \
    printf '%s\n' \
        'Types: deb' \
        'URIs: https://apt.postgresql.org/pub/repos/apt' \
        "Suites: ${VERSION_CODENAME}-pgdg" \
        'Components: main' \
        'Signed-By: /usr/share/keyrings/pgdg.asc' \
        > /etc/apt/sources.list.d/pgdg.sources; \
    apt-get update; \
    apt-get install -y --no-install-recommends "postgresql-client-${PG_MAJOR}"; \
    rm -rf /var/lib/apt/lists/*; \
    "/usr/lib/postgresql/${PG_MAJOR}/bin/pg_dump" --version; \
    "/usr/lib/postgresql/${PG_MAJOR}/bin/pg_restore" --version

# A fixed, unprivileged UID/GID, so volume ownership and runAsUser/runAsNonRoot are predictable.
RUN groupadd --system --gid 10001 rollbot \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin rollbot

COPY --from=builder /opt/venv /opt/venv

WORKDIR /app
# Root-owned: the bot reads runbooks and must never change them. Mount a folder over
# /app/runbooks to use runbooks that are not baked into the image.
COPY runbooks/ /app/runbooks/
# Drizzle's migrations folder (meta/_journal.json and the .sql files), baked in when a build
# argument names it: a folder of the build context that .dockerignore admits (drizzle/ is),
#   docker build --build-arg MIGRATIONS_DIR=drizzle -t rollbot .
# Empty (the default): nothing is copied and ROLLBOT_MIGRATIONS_DIR is empty, which rollbot
# reads as unset; mount the folder at run time instead (compose.yaml does). The bind mount's
# default source is the context's root, which always exists, so an empty value still builds.
ARG MIGRATIONS_DIR=""
RUN --mount=type=bind,source=${MIGRATIONS_DIR:-.},target=/tmp/migrations \
    set -eux; \
    if [ -n "$MIGRATIONS_DIR" ]; then \
        test -f /tmp/migrations/meta/_journal.json \
            || { echo "MIGRATIONS_DIR=$MIGRATIONS_DIR has no meta/_journal.json" >&2; exit 1; }; \
        install -d -m 0755 /app/drizzle; \
        cp -R /tmp/migrations/. /app/drizzle/; \
        chmod -R u=rwX,go=rX /app/drizzle; \
    fi
# Backups hold every row of the tables a rollback drops: only rollbot's user may open them.
RUN install -d -o 10001 -g 10001 -m 0700 /app/backups
VOLUME ["/app/backups"]

# ROLLBOT_PG_BIN names the client explicitly, so no other pg_dump on PATH can be picked.
ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PORT=3000 \
    ROLLBOT_PG_BIN=/usr/lib/postgresql/${PG_MAJOR}/bin \
    ROLLBOT_RUNBOOKS_DIR=/app/runbooks \
    ROLLBOT_BACKUP_DIR=/app/backups \
    ROLLBOT_MIGRATIONS_DIR=${MIGRATIONS_DIR:+/app/drizzle}
EXPOSE 3000

# `docker stop` and Kubernetes send SIGTERM; rollbot stops gracefully on it.
STOPSIGNAL SIGTERM
# /healthz answers in both Slack modes and fails when the state database does not. The image
# has no curl; Python's urllib does, with proxies bypassed (an HTTP_PROXY set for reaching
# Slack must not swallow a request to 127.0.0.1). Any error or non-2xx status exits 1.
# Shell form on purpose: $PORT is read when the check runs, so `-e PORT=…` is honoured.
# hadolint ignore=DL3025
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import urllib.request as r; r.build_opener(r.ProxyHandler({})).open('http://127.0.0.1:${PORT:-3000}/healthz', timeout=4)" || exit 1

USER 10001:10001
CMD ["rollbot", "serve"]
