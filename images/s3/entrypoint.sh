#!/bin/bash
# A one-node Ceph cluster in one container, for the tests' S3 bucket: a monitor, one BlueStore OSD on a
# sparse file and the RADOS Gateway (radosgw), all on 127.0.0.1 inside the container, with cephx off (only
# the S3 port is published). Everything lives under /var/lib/s3 (the volume): made on the first start,
# reused after. The S3 user's access key and secret are S3_ACCESS_KEY/S3_SECRET_KEY (or their _FILE
# variants): test credentials only, radosgw-admin takes them in its argv inside this container.
# Arguments to the container are passed on to radosgw.
# With S3_TLS_DIR (s3.crt and s3.key in it, e.g. a mounted volume) radosgw also serves https on S3_TLS_PORT (7443).
set -euo pipefail
data=/var/lib/s3
user="${S3_USER:-edms}"
say() { printf 's3: %s\n' "$*" >&2; }

read_secret() { # name
  local file_var="${1}_FILE"
  if [ -n "${!file_var:-}" ]; then cat "${!file_var}"; else printf '%s' "${!1:-}"; fi
}

write_config() { # fsid
  mkdir -p /etc/ceph /run/ceph
  cat >/etc/ceph/ceph.conf <<CONF
[global]
fsid = $1
mon_host = v2:127.0.0.1:3300
public_addr = 127.0.0.1
ms_bind_msgr1 = false
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
# Without cephx there is no session key for the "secure" mode radosgw asks for by default.
ms_client_mode = crc
ms_mon_client_mode = crc
osd_pool_default_size = 1
osd_pool_default_min_size = 1
mon_allow_pool_size_one = true
osd_pool_default_pg_num = 8
osd_crush_chooseleaf_type = 0
mon_max_pg_per_osd = 1000
mon_warn_on_pool_no_redundancy = false
log_file =
log_to_stderr = true
err_to_stderr = true
mon_cluster_log_to_stderr = false
# Errors only: one line per request and the daemons' chatter would fill the test logs
# (arguments to the container go to radosgw: --debug-rgw=1 logs every request).
debug_rgw = 0/5
debug_mon = 0/5
debug_osd = 0/5
debug_rocksdb = 0/5
debug_bluestore = 0/5
debug_bluefs = 0/5
debug_bdev = 0/5
debug_ms = 0/5
debug_monc = 0/5
debug_paxos = 0/5
[mon]
mon_data = $data/mon
[osd]
osd_data = $data/osd
osd_objectstore = bluestore
bluestore_block_size = ${S3_CAPACITY_BYTES:-21474836480}
osd_memory_target = 1073741824
[client.rgw]
rgw_frontends = beast port=${S3_PORT:-7480}${S3_TLS_DIR:+ ssl_port=${S3_TLS_PORT:-7443} ssl_certificate=$S3_TLS_DIR/s3.crt ssl_private_key=$S3_TLS_DIR/s3.key}
CONF
}

wait_for() { # description, command...
  local what=$1; shift
  for _ in $(seq 120); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  say "$what not ready after 120 s"; exit 1
}
osd_up() { [ "$(ceph osd stat -f json | python3 -c 'import json,sys; print(json.load(sys.stdin)["num_up_osds"])')" = 1 ]; }

first_start() {
  local fsid osd_uuid
  fsid="$(cat /proc/sys/kernel/random/uuid)"
  osd_uuid="$(cat /proc/sys/kernel/random/uuid)"
  write_config "$fsid"
  monmaptool --create --fsid "$fsid" --addv a '[v2:127.0.0.1:3300]' /run/ceph/monmap >/dev/null
  ceph-mon --mkfs -i a --monmap /run/ceph/monmap
  ceph-mon -i a -f & mon=$!
  wait_for monitor ceph mon stat
  ceph osd new "$osd_uuid" >/dev/null
  mkdir -p "$data/osd"
  ceph-osd -i 0 --mkfs --osd-uuid "$osd_uuid" 2>&1 | grep -v '^$' >&2 || true
  echo "$fsid" >"$data/fsid"
}

stop() { # exit status
  say "stopping"
  kill -TERM "${rgw:-}" 2>/dev/null && wait "$rgw" 2>/dev/null
  kill -TERM "${osd:-}" 2>/dev/null && wait "$osd" 2>/dev/null
  kill -TERM "${mon:-}" 2>/dev/null && wait "$mon" 2>/dev/null
  exit "$1"
}
trap 'stop 0' TERM INT

access_key="$(read_secret S3_ACCESS_KEY)"
secret_key="$(read_secret S3_SECRET_KEY)"
[ -n "$access_key" ] && [ -n "$secret_key" ] || { say "set S3_ACCESS_KEY and S3_SECRET_KEY (or their _FILE variants)"; exit 1; }
mkdir -p "$data"
if [ -s "$data/fsid" ]; then
  write_config "$(cat "$data/fsid")"
  ceph-mon -i a -f & mon=$!
  wait_for monitor ceph mon stat
else
  say "first start: making the cluster in $data"
  first_start
fi
ceph-osd -i 0 -f & osd=$!
wait_for "the OSD" osd_up
if ! radosgw-admin user info --uid="$user" >/dev/null 2>&1; then
  radosgw-admin user create --uid="$user" --display-name="$user" --access-key="$access_key" --secret-key="$secret_key" >/dev/null
  say "user $user created"
fi
radosgw -n client.rgw -f "$@" & rgw=$!
say "serving S3 on port ${S3_PORT:-7480}${S3_TLS_DIR:+ and TLS on ${S3_TLS_PORT:-7443}}"
wait -n "$mon" "$osd" "$rgw" || true
say "a daemon exited"
stop 1
