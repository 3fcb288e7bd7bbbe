# saed container image. CPU build (default):
#   docker build -t saed .
# GPU build (CUDA backend; run with --gpus all):
#   docker build -t saed:cuda \
#     --build-arg BUILD_BASE=nvidia/cuda:12.4.1-devel-ubuntu22.04 \
#     --build-arg RUNTIME_BASE=nvidia/cuda:12.4.1-runtime-ubuntu22.04 .
# Run: docker run -p 8080:8080 -e DATABASE_URL=... -e SAED_API_KEYS=... -v /models:/data -e SAED_DATA_ROOTS=/data saed
# saed refuses a non-loopback listen address without API keys (see README, --insecure).
ARG BUILD_BASE=debian:12
ARG RUNTIME_BASE=debian:12-slim

FROM ${BUILD_BASE} AS build
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update && apt-get install -y --no-install-recommends \
      gcc make pkg-config git ca-certificates \
      libmicrohttpd-dev libjansson-dev libpq-dev libcurl4-openssl-dev libuv1-dev \
      libopenblas-dev zlib1g-dev libyaml-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# nvcc is on PATH only in the CUDA devel base; elsewhere this is the CPU-only build.
RUN make clean && make all && build/saed version

FROM ${RUNTIME_BASE}
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update && apt-get install -y --no-install-recommends \
      libmicrohttpd12 libjansson4 libpq5 libcurl4 libuv1 libopenblas0 zlib1g libyaml-0-2 curl ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home /app saed
WORKDIR /app
COPY --from=build /src/build/saed /app/saed
# Present only in the GPU build; the wildcard keeps the CPU build's COPY from failing.
COPY --from=build /src/build/saed-cuda.s[o] /app/
COPY migrations/ /app/migrations/
COPY openapi/ /app/openapi/
USER saed
ENV SAED_LISTEN=0.0.0.0:8080
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["/app/saed"]
CMD ["serve"]
