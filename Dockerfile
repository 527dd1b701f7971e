# chatd in a container. The image needs no PostgreSQL of its own: set
# DATABASE_URL (and EVENTSTORE_URL for EventStoreDB/KurrentDB).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -o /out/chatd ./cmd/chatd && CGO_ENABLED=0 go build -o /out/chatctl ./cmd/chatctl

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/chatd /out/chatctl /usr/local/bin/
ENV CHAT_ADDR=0.0.0.0:8000 CHAT_DATA_DIR=/data
VOLUME /data
EXPOSE 8000
ENTRYPOINT ["/usr/local/bin/chatd"]
