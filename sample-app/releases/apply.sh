#!/bin/sh
# Lays a release of the sample app over the base tree (release 1.0.0): each releases/<tag>/ holds the files
# that differ, and a file `parent` naming the release it builds on. Run by images/backend/Dockerfile.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
apply() {
  [ "$1" = 1.0.0 ] && return 0
  [ -d "$here/$1" ] || { echo "unknown release $1 (have: $(ls "$here" | grep -v apply.sh | tr '\n' ' '))" >&2; exit 1; }
  apply "$(cat "$here/$1/parent")"
  (cd "$here/$1" && find . -type f ! -name parent | while read -r f; do mkdir -p "$here/../$(dirname "$f")"; cp "$f" "$here/../$f"; done)
}
apply "$1"
