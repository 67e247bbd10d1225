# bitbucket-catalogd: a static-ish Rust binary on Debian slim.
#
# Build:   docker build -t bitbucket-catalogd:0.1.0 .
# Behind a TLS-intercepting proxy (corporate CA), the build stage must trust
# that CA to fetch crates: put its PEM next to this file and add, right
# after the first FROM,
#   COPY corporate-ca.pem /usr/local/share/ca-certificates/corporate-ca.crt
#   RUN update-ca-certificates
#   ENV CARGO_HTTP_CAINFO=/etc/ssl/certs/ca-certificates.crt
# At run time, mount the PEM and set NODE_EXTRA_CA_CERTS=/path/to/it instead.

FROM rust:1-bookworm AS build
WORKDIR /src

# Dependencies in their own layer: a change to our code rebuilds only our
# crate. Cargo needs every target the manifests declare to exist, so each is
# stubbed here (the bench list is read from Cargo.toml, so a new bench needs
# no edit) and replaced below; tests/it/deploy.rs runs this step against
# the manifests.
COPY Cargo.toml Cargo.lock ./
COPY sim/Cargo.toml sim/Cargo.toml
RUN mkdir -p src sim/src benches \
 && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
 && echo 'fn main() {}' > sim/src/main.rs && touch sim/src/lib.rs \
 && for bench in $(awk '/^\[\[bench\]\]/ {b = 1; next} b && /^name *=/ {gsub(/^name *= *"|"$/, ""); print; b = 0}' Cargo.toml); do echo 'fn main() {}' > "benches/$bench.rs"; done
RUN cargo build --release --locked --bin bitbucket-catalogd \
 && rm -rf src sim/src benches

COPY src ./src
COPY benches ./benches
COPY sim ./sim
# COPY keeps the files' old modification times: make sure cargo sees them as newer than the stubs.
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --bin bitbucket-catalogd

FROM debian:bookworm-slim
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="bitbucket-catalogd" \
      org.opencontainers.image.description="Discovers Backstage catalog entities in Bitbucket and serves them over the Backstage catalog REST API" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
# ca-certificates: Bitbucket's TLS. No curl: `bitbucket-catalogd health` is the health check.
# /app/data belongs to group 0 and is group-writable, for platforms that run
# the image under an arbitrary UID in group 0 (OpenShift).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /app/config /app/data \
 && chown 10001:0 /app/data \
 && chmod 0775 /app/data
WORKDIR /app
COPY --from=build /src/target/release/bitbucket-catalogd /usr/local/bin/bitbucket-catalogd
COPY config/app-config.yaml /app/config/app-config.yaml
COPY LICENSE /usr/share/doc/bitbucket-catalogd/LICENSE
# Numeric, so Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
VOLUME ["/app/data"]
EXPOSE 7007
# Reads the same config (and APP_CONFIG_* overrides) as `serve`, so it
# probes the port the daemon really listens on.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
  CMD ["bitbucket-catalogd", "health", "--config", "/app/config/app-config.yaml"]
ENTRYPOINT ["bitbucket-catalogd"]
CMD ["serve", "--config", "/app/config/app-config.yaml"]
