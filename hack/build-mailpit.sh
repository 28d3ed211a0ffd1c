#!/usr/bin/env bash
# Builds Mailpit from its published Go module (through the wrapper module hack/mailpit) into a cache
# outside the checkout, keyed by version, and prints its bin directory. Builds only when missing: a
# warm run is instant; a cold one took about 70 seconds on 2 cores, downloads included.
#
# The module ships the files the binary embeds (server/ui: the API's docs and icons) but not the web
# UI's JavaScript build (server/ui/dist, made with npm in mailpit's own releases), so the binary
# serves SMTP and the REST API that the tests use, and its web UI pages are empty. Nothing but the
# module proxy is reached.
set -euo pipefail

hack=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/versions.sh
source "$hack/versions.sh"

out=$MAILPIT_BIN/mailpit
if [[ ! -x $out ]]; then
  echo "roster: building mailpit from github.com/axllent/mailpit@$MAILPIT_VERSION (about a minute cold) ..." >&2
  start=$SECONDS
  mkdir -p "$MAILPIT_BIN"
  # Version stamps what `mailpit version` prints (release builds set it the same way).
  (cd "$hack/mailpit" && CGO_ENABLED=0 GOFLAGS="${GOFLAGS:--buildvcs=false}" go build -trimpath \
    -ldflags "-s -w -X github.com/axllent/mailpit/config.Version=$MAILPIT_VERSION" \
    -o "$out.$$.tmp" github.com/axllent/mailpit)
  mv "$out.$$.tmp" "$out"
  echo "roster: built mailpit in $((SECONDS - start))s" >&2
fi
echo "$MAILPIT_BIN"
