#!/bin/sh
# Builds the Go peer server (bench only, never CI) offline, from Debian's packages alone:
#   apt-get install -y golang-go golang-google-grpc-dev
# Usage: build.sh OUT_DIR. Prints the binary's path on stdout. Exits 3, with what is missing on
# stderr, when Go or grpc-go is absent (bench/run.ts then skips the Go rows and says why).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build.sh OUT_DIR}
if ! command -v go >/dev/null 2>&1; then
  echo "go not found (apt-get install -y golang-go golang-google-grpc-dev)" >&2
  exit 3
fi
if [ ! -d /usr/share/gocode/src/google.golang.org/grpc ]; then
  echo "grpc-go not found in /usr/share/gocode (apt-get install -y golang-google-grpc-dev)" >&2
  exit 3
fi
mkdir -p "$out"
out=$(cd "$out" && pwd) # GOCACHE must be absolute
# GOPATH mode over Debian's Go sources: no module download, no network (GOPROXY=off).
cd "$here"
GOPATH=/usr/share/gocode GO111MODULE=off GOPROXY=off GOFLAGS= GOCACHE="$out/cache" \
  go build -trimpath -o "$out/demo-server" main.go wire.go >&2
echo "$out/demo-server"
