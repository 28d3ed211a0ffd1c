#!/usr/bin/env bash
# `make tour`: runs the README's walk-through (the block between <!-- tour:begin --> and
# <!-- tour:end -->) exactly as written, echoing each command, so that the README is what runs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
hack/install-deps.sh
dir=${ROSTER_NODE_DIR:-${TMPDIR:-/tmp}/roster-cluster}
if hack/node.sh status "$dir" >/dev/null 2>&1; then
  echo "tour: a cluster already runs in $dir; the tour starts from nothing: make cluster-down first" >&2
  exit 1
fi
script=$(awk '/^<!-- tour:begin -->$/ {on = 1; next} /^<!-- tour:end -->$/ {on = 0} on && !/^```/' README.md)
[[ -n $script ]] || { echo "tour: no walk-through block in README.md" >&2; exit 1; }
PS4='$ ' bash -euo pipefail -x -c "$script"
echo
echo "tour: done. The cluster and roster's pods keep running; eval \"\$(hack/node.sh env)\" to use them, make cluster-down to stop."
