#!/bin/sh
set -eu
if [ "${1:-}" = redis-server ]; then
  # Debian's redis binds to loopback and runs protected by default; inside the private network it must
  # listen on the container's interface.
  shift
  set -- redis-server --bind 0.0.0.0 --protected-mode no "$@"
  if [ "$(id -u)" = 0 ]; then
    chown -R redis:redis /data
    exec gosu redis "$@"
  fi
fi
exec "$@"
