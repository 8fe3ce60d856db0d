# The image: one static nodedebug binary (agent, CLI, tool init), the
# toolbox image tar the agent imports at start, and nodedebug-gateway for
# the gateway Deployment. Multi-arch with buildx:
#   docker buildx build --platform linux/amd64,linux/arm64 -t nodedebug:dev .

# busybox-static of the target architecture becomes the toolbox.
FROM --platform=$TARGETPLATFORM debian:12-slim AS busybox
RUN apt-get update && apt-get install -y --no-install-recommends busybox-static \
    && rm -rf /var/lib/apt/lists/*

# The build runs on the target's platform (under emulation for a foreign
# one): the nsenter constructor is C, and a native gcc links it statically
# without a cross toolchain.
FROM --platform=$TARGETPLATFORM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
COPY --from=busybox /bin/busybox /busybox
# Static, with cgo for the nsenter constructor: the agent's binary also
# runs inside tool images as their init, whatever libc they have or lack.
RUN CGO_ENABLED=1 go build -trimpath -tags netgo,osusergo \
        -ldflags '-s -extldflags "-static"' -o /out/nodedebug . \
    && CGO_ENABLED=0 go build -trimpath -ldflags=-s -o /out/nodedebug-gateway ./cmd/nodedebug-gateway \
    && go run ./test/images/cmd/mkimage toolbox -busybox /busybox -o /out/toolbox.tar

FROM scratch
COPY --from=build /out/nodedebug /usr/local/bin/nodedebug
COPY --from=build /out/nodedebug-gateway /usr/local/bin/nodedebug-gateway
COPY --from=build /out/toolbox.tar /opt/nodedebug/toolbox.tar
ENTRYPOINT ["/usr/local/bin/nodedebug"]
CMD ["agent", "--toolbox-tar", "/opt/nodedebug/toolbox.tar"]
