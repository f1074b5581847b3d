#!/bin/sh
set -eu
if [ "${1:-}" = redis-server ]; then
  # Debian's redis binds to loopback and runs protected by default; inside the private network it must
  # listen on the container's interface.
  shift
  # redis-server takes a config file only as its first argument (the stack's holds `requirepass`).
  if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
    conf=$1
    shift
    set -- redis-server "$conf" --bind 0.0.0.0 --protected-mode no "$@"
  else
    set -- redis-server --bind 0.0.0.0 --protected-mode no "$@"
  fi
  if [ "$(id -u)" = 0 ]; then
    chown -R redis:redis /data
    exec gosu redis "$@"
  fi
fi
exec "$@"
