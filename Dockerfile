# retentiond container image.
#
#   docker build -t retentiond .
#   docker run -d -p 9464:9464 -v retentiond-data:/var/lib/retentiond retentiond   # the daemon, on SQLite
#   docker run --rm -v retentiond-data:/var/lib/retentiond retentiond purge --dry-run
#
# The image runs as UID/GID 65532, not root. Its working directory
# /var/lib/retentiond belongs to that user and holds the SQLite default
# (sqlite://retentiond.db, relative to the working directory); mount a volume
# there to keep it. For PostgreSQL set RETENTIOND__DATABASE__URL, and mount the
# password as a file named by RETENTIOND__DATABASE__PASSWORD_FILE.
# deploy/kubernetes/ runs this image.

# Needs Rust >= 1.94 (edition 2024, sqlx 0.9).
FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
COPY vendor ./vendor
# The registry and target directory are BuildKit cache mounts, so a rebuild
# after a source change does not download or compile the dependencies again.
# They are not part of the image: copy the binary out in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
    && install -m 0755 target/release/retentiond /usr/local/bin/retentiond

FROM debian:bookworm-slim
# ca-certificates: the system's CA certificates, which TLS to PostgreSQL
# (with sslrootcert=system, or none named) and to an https:// pushgateway
# (unless metrics.pushgateway_ca_file is set) trust. Not pinned (DL3008): the stable
# archive drops old versions, and a pin would break the build at the next
# point release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 65532 retentiond \
    && useradd --system --uid 65532 --gid 65532 --home-dir /var/lib/retentiond --no-create-home \
       --shell /usr/sbin/nologin retentiond \
    && install -d -m 0700 -o 65532 -g 65532 /var/lib/retentiond
COPY --from=builder /usr/local/bin/retentiond /usr/local/bin/retentiond
USER 65532:65532
WORKDIR /var/lib/retentiond
# In a container the HTTP endpoints (/metrics, /healthz, /readyz) must listen
# on all interfaces, not on the built-in 127.0.0.1:9464. The environment
# overrides metrics.listen in a configuration file: to change or disable it
# (empty), set this variable, e.g. `docker run -e RETENTIOND__METRICS__LISTEN=`.
ENV RETENTIOND__METRICS__LISTEN=0.0.0.0:9464
# Off the loopback address the status pages need a password file: they are
# off in the image. To serve them, mount a file holding the password and set
# RETENTIOND__UI__ENABLED=true and RETENTIOND__UI__PASSWORD_FILE=/path/to/it.
ENV RETENTIOND__UI__ENABLED=false
EXPOSE 9464
ENTRYPOINT ["/usr/local/bin/retentiond"]
CMD ["run"]
