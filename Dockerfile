# syntax=docker/dockerfile:1
#
# EnvShield Auth images. No PostgreSQL inside: give the server DATABASE_URL.
#
#   docker build -t envshield-server .                 # the server (default target)
#   docker build --target cli -t envshield .           # the envshield CLI alone
#
# Dependencies are compiled in their own layer (cargo-chef), rebuilt only
# when Cargo.toml or Cargo.lock change. Templates and CSS are compiled into
# the binary, so the runtime image holds the binary, libpq and libssl
# (webauthn-rs, for passkeys, links OpenSSL). The CLI's keyring links
# libdbus, so the builder has its headers.

# The toolchain the project is built and tested with (1.89 is the minimum).
ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS chef
# Pinned: the recipe format must match between `prepare` and `cook`.
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpq-dev libssl-dev libdbus-1-dev pkg-config make \
    && rm -rf /var/lib/apt/lists/*
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json \
    -p envshield-server -p envshield
COPY . .
RUN cargo build --release --locked --bin envshield-server --bin envshield

# The CLI. libdbus-1-3: the keyring's Secret Service client is linked to
# libdbus (in a container without a Secret Service the CLI keeps its token
# in the config file, and says so); ca-certificates: https to the server.
FROM debian:${DEBIAN_RELEASE}-slim AS cli
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libdbus-1-3 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 65532 envshield \
    && useradd --system --no-log-init --uid 65532 --gid 65532 --create-home --home-dir /home/envshield \
       --shell /usr/sbin/nologin envshield
COPY --from=builder /src/target/release/envshield /usr/local/bin/envshield
USER 65532:65532
WORKDIR /home/envshield
ENTRYPOINT ["/usr/local/bin/envshield"]

FROM debian:${DEBIAN_RELEASE}-slim AS server
# libpq5: Diesel's PostgreSQL driver; libssl3: OpenSSL, which webauthn-rs
# (passkeys) links; ca-certificates: verify-full to the database without
# sslrootcert uses the system roots. Versions follow the Debian release's
# security updates rather than a pin that would go stale.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpq5 libssl3 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 envshield \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin envshield \
    && install -d -o 10001 -g 10001 -m 0700 /var/lib/envshield
COPY --from=builder /src/target/release/envshield-server /usr/local/bin/envshield-server
# Production settings: explicit keys, an https APP_URL and DATABASE_URL are
# required, and the server refuses to start without them, naming what is missing.
ENV ENVSHIELD_ENV=production \
    ENVSHIELD_DATA_DIR=/var/lib/envshield \
    BIND_ADDR=0.0.0.0:3000 \
    LOG_FORMAT=json
WORKDIR /var/lib/envshield
USER 10001:10001
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["envshield-server", "healthcheck"]
# SIGTERM drains held polls, then finishes requests in flight (at most 10 s).
STOPSIGNAL SIGTERM
ENTRYPOINT ["envshield-server"]
CMD ["serve"]
