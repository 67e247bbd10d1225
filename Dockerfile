# syntax=docker/dockerfile:1
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
# The workspace manifest names the simulator; cargo needs it present even when only the daemon is built.
COPY sim ./sim
RUN cargo build --release --locked --bin bitbucket-catalogd

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin catalogd \
 && mkdir -p /app/config /app/data \
 && chown catalogd /app/data
WORKDIR /app
COPY --from=build /src/target/release/bitbucket-catalogd /usr/local/bin/bitbucket-catalogd
COPY config/app-config.yaml /app/config/app-config.yaml
USER catalogd
VOLUME ["/app/data"]
EXPOSE 7007
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s \
  CMD curl -fsS http://127.0.0.1:7007/.backstage/health/v1/liveness || exit 1
ENTRYPOINT ["bitbucket-catalogd"]
CMD ["serve", "--config", "/app/config/app-config.yaml"]
