# The appliance image: `peregrine up` as a non-root user on a read-only root filesystem
# (deploy/k8s mounts the data volume, the configuration and the TLS secret).
#
#   docker build -t peregrine .
#
# Stage 1 builds the release binary; stage 2 carries only it and the C runtime it links.
FROM rust:1.95-slim-bookworm AS build
# jemalloc's build runs make; ring and SQLite compile C with the image's gcc.
RUN apt-get update \
    && apt-get install -y --no-install-recommends make \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p peregrine \
    && cp target/release/peregrine /peregrine

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /peregrine /usr/local/bin/peregrine
USER 10001:10001
# 8080 health/metrics/control (TCP), 8081 REST/WebSocket (TCP), 4433 QUIC order entry (UDP).
EXPOSE 8080/tcp 8081/tcp 4433/udp
# Relative data paths would land in the read-only root; the manifests set data.dir.
WORKDIR /var/lib/peregrine
HEALTHCHECK NONE
ENTRYPOINT ["/usr/local/bin/peregrine"]
CMD ["up", "--config", "/etc/peregrine/peregrine.toml"]
