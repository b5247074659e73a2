# sensegate container image: a static binary on distroless, as non-root.
#   docker build --build-arg VERSION=$(git describe --tags --always) \
#     --build-arg COMMIT=$(git rev-parse --short HEAD) -t sensegate .
# The build flags live in scripts/build.sh (shared with `make build`).
# The QSEoW simulator, a development tool that the sensegate image does not
# carry, has an image of its own (deploy/compose.yaml's demo profile):
#   docker build --target qliksim -t sensegate-qliksim .

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
RUN VERSION="$VERSION" COMMIT="$COMMIT" ./scripts/build.sh /out/sensegate

FROM build AS qliksim-build
RUN VERSION="$VERSION" COMMIT="$COMMIT" ./scripts/build.sh /out/qliksim ./cmd/qliksim

# The simulator's image (--target qliksim); the last stage, sensegate's,
# is the default.
FROM gcr.io/distroless/static-debian12:nonroot AS qliksim
COPY --from=qliksim-build /out/qliksim /qliksim
USER 65532:65532
EXPOSE 8443 4243
ENTRYPOINT ["/qliksim"]

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/sensegate /sensegate
# The configuration: mount yours here (or name another with SENSEGATE_CONFIG).
# Qlik's certificate export: mount read-only at /etc/sensegate/qlik.
# admin.listen must be ":9090" (not loopback) for probes from outside.
ENV SENSEGATE_CONFIG=/etc/sensegate/sensegate.yaml \
    SENSEGATE_SERVER_LISTEN=:8080 \
    SENSEGATE_ADMIN_LISTEN=:9090
USER 65532:65532
EXPOSE 8080 9090
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/sensegate", "healthcheck"]
ENTRYPOINT ["/sensegate"]
CMD ["serve"]
