# syntax=docker/dockerfile:1.7
#
# The roster operator image, as the Helm chart (charts/roster) runs it:
#   docker build -t REGISTRY/roster:0.1.0 .
#   helm install roster charts/roster -n roster-system --create-namespace \
#     --set image.repository=REGISTRY/roster
#
# NOTE: no test builds this image: the development machine has no container engine and no registry.
# The chart is tested by installing it into the local control plane and running the operator binary
# outside the cluster as the chart's ServiceAccount (tests/chart.rs), which also checks that this file
# agrees with the chart (rust-version, user, ports, entrypoint); `make msrv` checks the crate builds
# with the Rust version of the build stage.

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
