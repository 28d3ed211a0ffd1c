# syntax=docker/dockerfile:1.7
#
# The roster operator image, as the Helm chart (charts/roster) runs it:
#   docker build -t REGISTRY/roster:0.1.0 .
#   helm install roster charts/roster -n roster-system --create-namespace \
#     --set image.repository=REGISTRY/roster
#
# For registries that build with Docker. Without a container engine (this repository's machines),
# hack/build-image.sh builds the same runtime image from the release binary: this stage's user,
# entrypoint, command, ports and labels, the C libraries the binary links and a CA bundle. tests/image.rs
# keeps the two in agreement and runs the binary from that image's root; tests/e2e_helm.rs runs it as
# the chart's pods on a real node. `make msrv` checks the crate builds with the build stage's Rust.

# --- build: a release binary from the locked dependencies --------------------------------------------
FROM docker.io/library/rust:1.89-bookworm AS build
WORKDIR /src
# Only what the build needs (see .dockerignore); benches/ because Cargo.toml declares its benchmarks.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin roster \
 && install -D -m 0755 target/release/roster /out/roster

# --- runtime: glibc and nothing else; no shell, no package manager -------------------------------------
# rustls with ring: no OpenSSL needed. The `nonroot` variant runs as uid/gid 65532, which the chart's
# pod security context also sets (runAsNonRoot, readOnlyRootFilesystem: roster writes no files).
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="roster" \
      org.opencontainers.image.description="Organizations, memberships, invites and teams as Kubernetes custom resources" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/roster /usr/local/bin/roster
USER 65532:65532
# 8080: /metrics, /healthz, /readyz; 8443: the admission webhook (HTTPS).
EXPOSE 8080 8443
ENTRYPOINT ["/usr/local/bin/roster"]
CMD ["run"]
