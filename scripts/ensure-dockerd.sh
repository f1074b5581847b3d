#!/usr/bin/env bash
# Starts dockerd in the background when no engine answers (CI and dev machines here have no systemd).
set -euo pipefail
if docker info >/dev/null 2>&1; then echo "docker engine already running"; exit 0; fi
command -v dockerd >/dev/null || { echo "dockerd missing: apt-get install -y docker.io" >&2; exit 1; }
nohup dockerd >/var/log/edms-dockerd.log 2>&1 &
for _ in $(seq 1 60); do
  docker info >/dev/null 2>&1 && { echo "dockerd started"; exit 0; }
  sleep 1
done
echo "dockerd did not answer within 60s; see /var/log/edms-dockerd.log" >&2
tail -20 /var/log/edms-dockerd.log >&2
exit 1
