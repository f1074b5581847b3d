#!/usr/bin/env bash
# Starts dockerd in the background when no engine answers (CI and dev machines here have no systemd).
# A machine restored from a snapshot may carry the pid files of an engine that no longer runs: dockerd then refuses
# to start ("pid file found"), and its containerd would trust a pid that now names another process. A pid file is
# removed only when no process of that name holds its pid; a live dockerd that is still starting is waited for.
set -euo pipefail
# Tests point these at a scratch folder; hosts keep the defaults.
run_dir="${EDMS_DOCKERD_RUN_DIR:-/var/run}"
log="${EDMS_DOCKERD_LOG:-/var/log/edms-dockerd.log}"
answers() { docker info >/dev/null 2>&1; }
# holder FILE NAME: succeeds when FILE names a live process called NAME.
holder() {
  local pid
  pid="$(tr -dc '0-9' <"$1" 2>/dev/null || true)"
  [[ -n "$pid" && "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$2" ]] || return 1
  # A killed process that its parent has not reaped yet (state Z) holds nothing.
  [[ "$(sed -E 's/^.*\) ([A-Za-z]).*$/\1/' "/proc/$pid/stat" 2>/dev/null)" != Z ]]
}
clear_stale() {
  local file="$1" name="$2"
  [[ -e "$file" ]] || return 0
  if holder "$file" "$name"; then return 1; fi
  echo "removing stale $file (no running $name holds its pid)"
  rm -f "$file"
}

if answers; then echo "docker engine already running"; exit 0; fi
command -v dockerd >/dev/null || { echo "dockerd missing: apt-get install -y docker.io" >&2; exit 1; }
# A dockerd that is starting (or stopping) is waited for; once none holds the pid file, one is started.
for _ in $(seq 1 60); do
  clear_stale "$run_dir/docker.pid" dockerd && break
  answers && { echo "docker engine answered"; exit 0; }
  sleep 1
done
if ! clear_stale "$run_dir/docker.pid" dockerd; then
  echo "dockerd (pid $(cat "$run_dir/docker.pid")) runs but does not answer; stop it or see its log" >&2
  exit 1
fi
clear_stale "$run_dir/docker/containerd/containerd.pid" containerd || true
nohup dockerd >"$log" 2>&1 &
for _ in $(seq 1 60); do answers && { echo "dockerd started"; exit 0; }; sleep 1; done
echo "dockerd did not answer within 60s; see $log" >&2
tail -20 "$log" >&2
exit 1
