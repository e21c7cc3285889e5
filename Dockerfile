# ticketd and ticket-flood on Debian 12, built from this repository.
FROM debian:12.8-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
        build-essential pkg-config librdkafka-dev libpq-dev libjansson-dev \
        libconfig-dev libmicrohttpd-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile ./
COPY src ./src
COPY producer ./producer
RUN make ticketd ticket-flood

FROM debian:12.8-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
        librdkafka1 libpq5 libjansson4 libconfig9 libmicrohttpd12 curl \
        && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/ticketd /src/ticket-flood /usr/local/bin/
COPY etc/ticketd.conf /etc/ticketd/ticketd.conf
USER nobody
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["/usr/local/bin/ticketd", "-c", "/etc/ticketd/ticketd.conf"]
