# syntax=docker/dockerfile:1.7
# One image with every CamReviews binary; compose and Kubernetes pick the command.

FROM rust:1.95.0-bookworm AS build
WORKDIR /src
COPY . .
# Registry and target caches survive between builds: dependencies compile once.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bins \
    && mkdir -p /out \
    && cp target/release/command-api target/release/query-api target/release/projector \
          target/release/notifier target/release/camctl /out/

FROM debian:bookworm-20241111-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 camreviews \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/camreviews --create-home camreviews \
    && mkdir -p /var/lib/camreviews/blobs \
    && chown camreviews: /var/lib/camreviews/blobs
COPY --from=build /out/ /usr/local/bin/
# Numeric, so Kubernetes' runAsNonRoot can verify it; compose and the manifests run as the
# same uid:gid (10001:10001) with a read-only root file system.
USER 10001:10001
WORKDIR /var/lib/camreviews
ENV CAMREVIEWS_DATA_DIR=/var/lib/camreviews LOG_FORMAT=json
CMD ["command-api"]
