# syntax=docker/dockerfile:1
# A small static image of the stickyseat agent, running as a non-root user.
#   docker build -t stickyseat .
#   docker run --rm -e STICKYSEAT_SERVERS=s1,s2,s3 -p 127.0.0.1:12345:12345 stickyseat
# The build stage's Go version is go.mod's "go" line (go test ./deploy checks it).

FROM golang:1.26.8-bookworm AS build
WORKDIR /src
# Modules first, so a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# Static (no cgo), no build paths in the binary, version stamped as `stickyseat --version` shows it.
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/stickyseat ./cmd/stickyseat

# distroless/static: CA certificates (rediss:// URLs), tzdata and an /etc/passwd with the
# non-root user "nonroot" (65532), no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/stickyseat /usr/local/bin/stickyseat
USER 65532:65532
EXPOSE 12345
ENTRYPOINT ["stickyseat"]
# 0.0.0.0 so HAProxy in another container can reach the agent. The agent trusts its SPOP peers:
# publish this port only on a private network that HAProxy alone reaches (docker-compose.yml
# puts it on an internal network), never on a public interface. Give the pools with
# STICKYSEAT_SERVERS (or --config and a mounted file) and the other STICKYSEAT_* variables.
CMD ["serve", "--listen", "0.0.0.0:12345"]
