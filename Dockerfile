# chatd in a container. The image holds no PostgreSQL of its own: set
# DATABASE_URL (and EVENTSTORE_URL for EventStoreDB/KurrentDB). Attachments
# live in /data, a volume owned by the image's non-root user.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/chatd ./cmd/chatd \
 && CGO_ENABLED=0 go build -trimpath -o /out/chatctl ./cmd/chatctl \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/chatd /out/chatctl /usr/local/bin/
# A named volume mounted here starts as a copy of this folder, owner
# included, so the non-root user (65532) can write attachments.
COPY --from=build --chown=65532:65532 /out/data /data
ENV CHAT_ADDR=0.0.0.0:8000 CHAT_DATA_DIR=/data CHAT_LOG_FORMAT=json
VOLUME /data
EXPOSE 8000
USER 65532:65532
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["/usr/local/bin/chatd", "-healthcheck"]
ENTRYPOINT ["/usr/local/bin/chatd"]
