# luahost in a container: a static binary on a distroless image, running as a non-root user.
#
#   docker build -t luahost .
#   docker run -p 8008:8008 -v "$PWD/conf:/etc/luahost:ro" -v luahost-data:/var/lib/luahost luahost
#
# /etc/luahost holds luahost.yaml and the modules it lists (module paths are relative to the
# config file). /var/lib/luahost is for data: set `data_dir: /var/lib/luahost` in luahost.yaml,
# since the default data_dir is a folder beside the config file, which is read-only here.
#
# tests/dockerfile_test.go checks this file without Docker: it runs the build stage's commands,
# checks the binary is static, and checks the final stage's user, healthcheck, volumes and command.

# The golang images set GOTOOLCHAIN=local, so this Go must be at least go.mod's `go` line.
FROM golang:1.26 AS build
SHELL ["/bin/bash", "-euo", "pipefail", "-c"]
WORKDIR /src
# Modules first, so editing the source does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# No cgo: the final image has no libc, so the binary must not need a dynamic loader.
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/luahost ./cmd/luahost
# The licences of everything compiled into the binary travel with it (docs/licences.md).
RUN dest=/out/licences; \
	mkdir -p "$dest/luahost" "$dest/go"; \
	cp LICENSE "$dest/luahost/"; \
	cp "$(go env GOROOT)/LICENSE" "$(go env GOROOT)/PATENTS" "$dest/go/"; \
	go list -deps -f '{{with .Module}}{{if not .Main}}{{.Path}} {{.Dir}}{{end}}{{end}}' ./cmd/luahost | sort -u | \
	while read -r mod dir; do \
		mkdir -p "$dest/$mod"; \
		found=""; \
		for f in "$dir"/LICEN[CS]E* "$dir"/COPYING* "$dir"/NOTICE* "$dir"/PATENTS*; do \
			if [ -f "$f" ]; then cp "$f" "$dest/$mod/"; found=1; fi; \
		done; \
		if [ -z "$found" ]; then echo "no licence file in $mod ($dir)" >&2; exit 1; fi; \
	done
# Mount points that exist in the image, so a fresh named volume is owned by the runtime user.
RUN mkdir -p /out/etc/luahost /out/var/lib/luahost

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/luahost /luahost
COPY --from=build /out/licences /usr/share/doc/luahost/licences
COPY --from=build /out/etc/luahost /etc/luahost
COPY --from=build --chown=65532:65532 /out/var/lib/luahost /var/lib/luahost
# distroless's nonroot user; stated here so the image stays non-root if the base changes.
USER 65532:65532
VOLUME ["/etc/luahost", "/var/lib/luahost"]
# 8008: the modules' web resources. 9090: the admin listener (/metrics, /health, /ready, /status).
# Publish 9090 only where Prometheus and operators reach it, never to the clients' network.
EXPOSE 8008 9090
# Logs go to stdout/stderr for `docker logs`; LUAHOST_LOG_FORMAT=json makes them one JSON object
# per line for a log collector.
# The image has no shell, curl or wget, so the binary checks itself: `luahost health` asks the
# admin listener's /health and exits 0 or 1 (never 2, which Docker reserves).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
	CMD ["/luahost", "health", "--admin", "http://127.0.0.1:9090"]
ENTRYPOINT ["/luahost"]
CMD ["serve", "-c", "/etc/luahost/luahost.yaml", "--listen", "0.0.0.0:8008", "--admin", "0.0.0.0:9090"]
