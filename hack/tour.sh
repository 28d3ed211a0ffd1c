#!/usr/bin/env bash
# `make tour`: runs the README's walk-through (the block between <!-- tour:begin --> and
# <!-- tour:end -->) exactly as written, echoing each command, so that the README is what runs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
hack/install-deps.sh
dir=${ROSTER_CONTROL_PLANE_DIR:-${TMPDIR:-/tmp}/roster-control-plane}
if hack/control-plane.sh status "$dir" >/dev/null 2>&1; then
  echo "tour: a control plane already runs in $dir (make dev?); the tour starts from nothing: make down first" >&2
  exit 1
fi
script=$(awk '/^<!-- tour:begin -->$/ {on = 1; next} /^<!-- tour:end -->$/ {on = 0} on && !/^```/' README.md)
[[ -n $script ]] || { echo "tour: no walk-through block in README.md" >&2; exit 1; }
PS4='$ ' bash -euo pipefail -x -c "$script"
echo
echo "tour: done. The control plane and roster keep running; eval \"\$(hack/control-plane.sh env)\" to use them, make down to stop."
