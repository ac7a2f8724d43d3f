# The `plinth` binary in a small image. Not built in this project's CI (no Docker there):
# `docker build -t plinth .` then e.g.
#   docker run --rm -p 8080:8080 -e DATABASE_URL=... \
#     -e PLINTH_OIDC_ISSUER=https://idp.example.com -e PLINTH_OIDC_AUDIENCE=https://plinth.example.com plinth
# docs/operations.md says how to run several replicas.

# Build stage: the toolchain image has what rdkafka-sys needs to build librdkafka (a C
# compiler, make, zlib headers, pkg-config). Migrations are compiled into the binary.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p plinth-api --bin plinth \
 && strip target/release/plinth

# Run stage: Debian slim (the binary links glibc, libgcc_s and zlib, which it has). No shell
# is needed at run time, but slim keeps one for debugging; distroless/cc lacks zlib.
# ca-certificates: the roots OpenID issuers' https certificates are checked against.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends zlib1g ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 plinth \
 && useradd --system --uid 10001 --gid plinth --no-create-home --shell /usr/sbin/nologin plinth
COPY --from=build /src/target/release/plinth /usr/local/bin/plinth
USER 10001:10001
# Inside a container the API must listen beyond loopback; logs go to a collector as JSON.
ENV PLINTH_LISTEN=0.0.0.0:8080 \
    PLINTH_LOG_FORMAT=json
EXPOSE 8080
# Probes: GET /healthz (liveness) and GET /readyz (readiness), see docs/operations.md. No
# HEALTHCHECK here: the image has no HTTP client, and orchestrators probe over the network.
ENTRYPOINT ["/usr/local/bin/plinth"]
CMD ["serve"]
