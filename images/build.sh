#!/usr/bin/env bash
# Builds every image the e2e tests deploy, offline: no image registry is reachable from our CI machines,
# so the base is a Debian rootfs made by debootstrap from the machine's own apt mirror, imported into
# Docker, with small Dockerfiles on top. Idempotent: each image is skipped when its tag already exists,
# built on the current base from the same sources (a change of sample-app/ or of images/<name>/ rebuilds
# it; EDMS_REBUILD=1 rebuilds everything).
#
#   images/build.sh          build everything that is missing
#   images/build.sh base     only the imported Debian rootfs
#   images/build.sh s3       only the S3 server (Ceph's radosgw on trixie)
set -euo pipefail
# One build at a time on a machine: .ci/run starts one in the background while the unit tests run, and the
# e2e tier's own call then waits here and finds every image present.
exec 8>/tmp/edms-images-build.lock
flock 8
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"

# apprise (alerts) needs python3-cryptography, whose dependency on the virtual python3-cffi-backend-api-*
# debootstrap cannot resolve: the package that provides it is named here.
# The base tag carries a hash of its package list, so adding a package rebuilds the base on every machine
# instead of silently reusing an older rootfs that lacks it.
PACKAGES="postgresql-15,postgresql-client-15,redis-server,python3-django,python3-psycopg2,gunicorn,python3-celery,python3-redis,gosu,procps,restic,rclone,haproxy,ca-certificates,apprise,python3-cffi-backend,python3-django-storages-boto3"
BASE_TAG="edms-test/debian-base:bookworm-$(printf '%s' "$PACKAGES" | sha256sum | cut -c1-10)"
POSTGRES_TAG="edms-test/postgres:15"
REDIS_TAG="edms-test/redis:7"
# restic (backup repositories) and rclone (`rclone serve restic`, the tests' off-host repository server).
# restic is trixie's 0.18 (a static Go binary), the generation real hosts run (restic/restic:0.18.0);
# bookworm's 0.14 is older than edms-ops supports. The tag names the version, so a machine with an older
# image builds the new one.
RESTIC_SUITE="trixie"
BACKUP_TAG="edms-test/backup:restic-0.18"
# The official restic image's userland: busybox, not GNU. edms-ops' scripts run under this in the tests.
BUSYBOX_BACKUP_TAG="edms-test/backup:restic-0.18-busybox"
# HAProxy from the base rootfs, laid out like the official haproxy image (edms:proxy.image on real hosts).
PROXY_TAG="edms-test/proxy:haproxy"
# node >= 20 for the scheduler image (edms:backup.schedulerImage in tests).
SCHEDULER_BASE_TAG="edms-test/scheduler-base:node20"
# A local image registry: Debian's docker-registry package (the e2e proof of releases pinned by digest).
REGISTRY_TAG="edms-test/registry:2.8"
BACKEND_REPO="edms-sample/backend"
# rclone laid out like the official rclone/rclone image (edms:media.image on real hosts).
RCLONE_TAG="edms-test/rclone:1.60"
# An S3-compatible server: Ceph's RADOS Gateway (reef) on a one-node Ceph cluster in one container (its
# dbstore/SQLite backend corrupts multipart objects and Range reads: docs/s3-server.md). trixie's Ceph
# needs trixie's libraries (glibc >= 2.38), so it has a trixie rootfs of its own.
# ceph-mon and ceph-osd pull logrotate -> cron -> systemd, which debootstrap cannot install: apt-get does.
S3_PACKAGES="radosgw,ca-certificates"
S3_LATER="ceph-mon ceph-osd"
S3_BASE_TAG="edms-test/s3-base:trixie-$(printf '%s' "$S3_PACKAGES $S3_LATER" | sha256sum | cut -c1-10)"
S3_TAG="edms-test/s3:radosgw-18.2"
# Releases of the sample app that the tests deploy; sample-app/releases/<tag>/ overlays the base tree.
RELEASES=(1.0.0 2.0.0 3.0.0-broken 3.1.0-unique)

log() { printf '[images %(%H:%M:%S)T] %s\n' -1 "$*"; }
have_image() { docker image inspect "$1" >/dev/null 2>&1; }

# The Debian mirror this machine already uses, from its apt sources (deb822 or one-line format).
# Never written into a file: CI and developers each read their own.
debian_mirror() {
  local uri
  uri=$(awk '/^URIs:/ {u=$2} /^Suites:/ && / bookworm( |$)/ {print u; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  if [ -z "$uri" ]; then
    uri=$(awk '$1=="deb" && $3=="bookworm" {print $2; exit}' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true)
  fi
  if [ -z "$uri" ]; then
    echo "images/build.sh: no bookworm mirror found in /etc/apt/sources.list{,.d}; add one or set EDMS_DEBIAN_MIRROR" >&2
    return 1
  fi
  echo "$uri"
}

# A Debian rootfs of a suite with the given packages, made by debootstrap and imported as an image.
# Packages whose dependencies debootstrap cannot order (it takes the first alternative of each and
# installs in batches) come as a fourth argument: apt-get installs them in the rootfs afterwards.
debootstrap_image() { # suite, packages (comma-separated), tag, [packages for apt-get (space-separated)]
  local suite=$1 packages=$2 tag=$3 later=${4:-} mirror rootfs started
  if have_image "$tag"; then log "$tag present, skipped"; return; fi
  command -v debootstrap >/dev/null || { echo "images/build.sh: debootstrap missing: apt-get install -y debootstrap" >&2; exit 1; }
  mirror="${EDMS_DEBIAN_MIRROR:-$(debian_mirror)}"
  rootfs="$(mktemp -d /var/tmp/edms-rootfs.XXXXXX)"
  trap 'umount "$rootfs/proc" 2>/dev/null || true; rm -rf "$rootfs"; trap - RETURN' RETURN
  started=$SECONDS
  log "debootstrap $suite (minbase + $(tr ',' ' ' <<<"$packages" | wc -w) packages)"
  # A log per suite: the two suites' rootfs are made at the same time.
  local blog="/var/tmp/edms-debootstrap-$suite.log"
  debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" >"$blog" 2>&1 ||
    { tail -20 "$blog" >&2; return 1; }
  if [ -n "$later" ]; then
    log "apt-get install $later"
    mount -t proc proc "$rootfs/proc"
    # shellcheck disable=SC2086 # a list of package names
    { chroot "$rootfs" apt-get -qq update && chroot "$rootfs" env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends $later; } >"$blog" 2>&1 ||
      { tail -20 "$blog" >&2; return 1; }
    umount "$rootfs/proc"
  fi
  # Services must not start inside the build, and apt caches only make the image bigger.
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/*
  log "docker import ($(du -sh "$rootfs" | cut -f1))"
  tar -C "$rootfs" -c . | docker import - "$tag" >/dev/null
  log "$tag built in $((SECONDS - started))s"
}

build_base() { debootstrap_image bookworm "$PACKAGES" "$BASE_TAG"; }

# Downloads one package of a Debian suite from this machine's mirror (signature checked with its keyring)
# and unpacks it into $3. apt runs with a state of its own, so the machine's apt lists are not touched.
fetch_package() { # suite, package, destination
  local suite=$1 package=$2 dest=$3 mirror state
  mirror="${EDMS_DEBIAN_MIRROR:-$(debian_mirror)}"
  state="$(mktemp -d /var/tmp/edms-apt.XXXXXX)"
  mkdir -p "$state/lists/partial" "$state/archives/partial" "$state/etc/preferences.d" "$state/etc/apt.conf.d"
  printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$mirror" "$suite" >"$state/suite.sources"
  local opts=(-o "Dir::Etc::sourcelist=$state/suite.sources" -o Dir::Etc::sourceparts=- -o "Dir::State::Lists=$state/lists"
    -o "Dir::Cache::Archives=$state/archives" -o "Dir::Etc::preferencesparts=$state/etc/preferences.d"
    -o "Dir::Etc::parts=$state/etc/apt.conf.d" -o "Dir::Cache=$state" -o APT::Get::List-Cleanup=0)
  apt-get "${opts[@]}" -qq update >/dev/null
  (cd "$state/archives" && apt-get "${opts[@]}" -qq download "$package:amd64" >/dev/null)
  dpkg-deb -x "$state"/archives/"${package}"_*.deb "$dest"
  rm -rf "$state"
}

build_backup() { # tag, dockerfile
  local tag=$1 file=$2 ctx
  local built_on
  built_on=$(docker image inspect -f '{{ index .Config.Labels "edms.base" }}' "$tag" 2>/dev/null || true)
  if [ "$built_on" = "$BASE_TAG" ] && [ "$(docker image inspect -f '{{ index .Config.Labels "edms.flock" }}' "$tag" 2>/dev/null || true)" = 1 ] &&
    [ "${EDMS_REBUILD:-0}" != 1 ]; then log "$tag present, skipped"; return; fi
  ctx="$(mktemp -d /var/tmp/edms-backup.XXXXXX)"
  trap 'rm -rf "$ctx"' RETURN
  fetch_package "$RESTIC_SUITE" restic "$ctx/restic-deb"
  cp "$ctx/restic-deb/usr/bin/restic" "$ctx/restic"
  fetch_package bookworm busybox-static "$ctx/busybox-deb"
  cp "$ctx/busybox-deb/bin/busybox" "$ctx/busybox"
  # Debian's restic links the C library (trixie needs >= 2.34; bookworm's 2.36 serves): the busybox image
  # takes this machine's, the only files it has besides busybox and restic.
  cp -L /lib/x86_64-linux-gnu/libc.so.6 "$ctx/libc.so.6"
  cp -L /lib64/ld-linux-x86-64.so.2 "$ctx/ld-linux-x86-64.so.2"
  # flock(1) for the stack lock shared with the scheduler: the official image's busybox (Alpine's) has the
  # applet, Debian's busybox-static leaves it out, so this machine's util-linux flock (libc only) stands in.
  cp -L "$(command -v flock)" "$ctx/flock"
  EDMS_REBUILD=1 build_dockerfile "$tag" "$file" "$ctx" --label edms.flock=1
}

# A hash of the repository files an image is built from (paths relative to the repository, so every
# checkout agrees): an image built from older sources is rebuilt, not silently reused.
source_hash() { # paths under the repository...
  local rel=()
  for p in "$@"; do rel+=("${p#"$repo"/}"); done
  (cd "$repo" && find "${rel[@]}" -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 | sort -z |
    xargs -0 sha256sum | sha256sum | cut -c1-12)
}

build_dockerfile() { # tag, dockerfile, context, extra args...
  local tag=$1 file=$2 context=$3; shift 3
  # Skipped only when built on the current base (a new package list rebuilds everything on top of it)
  # and, for a context in the repository, from the same sources.
  local built_on built_from source=""
  case "$context" in "$repo"/*) source="$(source_hash "$file" "$context")" ;; esac
  built_on=$(docker image inspect -f '{{ index .Config.Labels "edms.base" }}' "$tag" 2>/dev/null || true)
  built_from=$(docker image inspect -f '{{ index .Config.Labels "edms.source" }}' "$tag" 2>/dev/null || true)
  if [ "$built_on" = "$BASE_TAG" ] && [ "$built_from" = "$source" ] && [ "${EDMS_REBUILD:-0}" != 1 ]; then
    log "$tag present, skipped"; return
  fi
  log "building $tag"
  docker build -q -t "$tag" -f "$file" --build-arg BASE="$BASE_TAG" --label edms.base="$BASE_TAG" \
    --label edms.source="$source" "$@" "$context" >/dev/null
}

# An ELF executable (not a wrapper script): the real binary to copy into an image.
is_elf() { [ -f "$1" ] && [ "$(head -c4 "$1" | od -An -c | tr -d ' ')" = '177ELF' ]; }

# This machine's node (>= 20), copied into the Debian base: the offline stand-in for the official node:20
# image the scheduler image copies node from on real hosts.
build_scheduler_base() {
  local node ctx
  if [ "$(docker image inspect -f '{{ index .Config.Labels "edms.base" }}' "$SCHEDULER_BASE_TAG" 2>/dev/null || true)" = "$BASE_TAG" ] &&
    [ "$(docker image inspect -f '{{ index .Config.Labels "edms.source" }}' "$SCHEDULER_BASE_TAG" 2>/dev/null || true)" = "$(source_hash "$here/scheduler-base")" ] &&
    [ "${EDMS_REBUILD:-0}" != 1 ]; then
    log "$SCHEDULER_BASE_TAG present, skipped"; return
  fi
  node="$(command -v node)"
  is_elf "$node" || { echo "images/build.sh: $node is not a node binary" >&2; exit 1; }
  "$node" -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' ||
    { echo "images/build.sh: node $("$node" --version) is too old: the scheduler needs node >= 20" >&2; exit 1; }
  ctx="$(mktemp -d /var/tmp/edms-scheduler-base.XXXXXX)"
  trap 'rm -rf "$ctx"' RETURN
  cp "$node" "$ctx/node"
  log "building $SCHEDULER_BASE_TAG"
  docker build -q -t "$SCHEDULER_BASE_TAG" -f "$here/scheduler-base/Dockerfile" --build-arg BASE="$BASE_TAG" \
    --label edms.base="$BASE_TAG" --label edms.source="$(source_hash "$here/scheduler-base")" "$ctx" >/dev/null
}

# Debian bookworm's docker-registry binary on the base, with the config in images/registry/.
build_registry() {
  local ctx source
  source="$(source_hash "$here/registry")"
  if [ "$(docker image inspect -f '{{ index .Config.Labels "edms.base" }}' "$REGISTRY_TAG" 2>/dev/null || true)" = "$BASE_TAG" ] &&
    [ "$(docker image inspect -f '{{ index .Config.Labels "edms.source" }}' "$REGISTRY_TAG" 2>/dev/null || true)" = "$source" ] &&
    [ "${EDMS_REBUILD:-0}" != 1 ]; then
    log "$REGISTRY_TAG present, skipped"; return
  fi
  ctx="$(mktemp -d /var/tmp/edms-registry.XXXXXX)"
  trap 'rm -rf "$ctx"' RETURN
  fetch_package bookworm docker-registry "$ctx/registry-deb"
  cp "$ctx/registry-deb/usr/bin/docker-registry" "$ctx/docker-registry"
  cp "$here/registry/config.yml" "$ctx/config.yml"
  log "building $REGISTRY_TAG"
  docker build -q -t "$REGISTRY_TAG" -f "$here/registry/Dockerfile" --build-arg BASE="$BASE_TAG" \
    --label edms.base="$BASE_TAG" --label edms.source="$source" "$ctx" >/dev/null
}

# Ceph's radosgw on its own trixie rootfs, with the entrypoint and config in images/s3/.
build_s3() {
  local source
  debootstrap_image trixie "$S3_PACKAGES" "$S3_BASE_TAG" "$S3_LATER"
  source="$(source_hash "$here/s3")"
  if [ "$(docker image inspect -f '{{ index .Config.Labels "edms.base" }}' "$S3_TAG" 2>/dev/null || true)" = "$S3_BASE_TAG" ] &&
    [ "$(docker image inspect -f '{{ index .Config.Labels "edms.source" }}' "$S3_TAG" 2>/dev/null || true)" = "$source" ] &&
    [ "${EDMS_REBUILD:-0}" != 1 ]; then
    log "$S3_TAG present, skipped"; return
  fi
  log "building $S3_TAG"
  docker build -q -t "$S3_TAG" -f "$here/s3/Dockerfile" --build-arg BASE="$S3_BASE_TAG" \
    --label edms.base="$S3_BASE_TAG" --label edms.source="$source" "$here/s3" >/dev/null
}

if [ "${1:-all}" = s3 ]; then build_s3; docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' "edms-test/s3*"; exit 0; fi
[ "${1:-all}" = base ] && { build_base; exit 0; }
# The S3 server's trixie rootfs is made while the bookworm one and the images on it are: both debootstraps
# wait mostly on the mirror (on a new machine 126 s and 109 s one after the other). Its failure fails the build.
build_s3 >"/var/tmp/edms-build-s3.log" 2>&1 &
s3_pid=$!
build_base
build_dockerfile "$POSTGRES_TAG" "$here/postgres/Dockerfile" "$here/postgres"
build_dockerfile "$REDIS_TAG" "$here/redis/Dockerfile" "$here/redis"
build_backup "$BACKUP_TAG" "$here/backup/Dockerfile"
build_backup "$BUSYBOX_BACKUP_TAG" "$here/backup-busybox/Dockerfile"
build_dockerfile "$PROXY_TAG" "$here/proxy/Dockerfile" "$here/proxy"
build_scheduler_base
build_registry
build_dockerfile "$RCLONE_TAG" "$here/rclone/Dockerfile" "$here/rclone"
for release in "${RELEASES[@]}"; do
  build_dockerfile "$BACKEND_REPO:$release" "$here/backend/Dockerfile" "$repo/sample-app" --build-arg RELEASE="$release"
done
s3_status=0
wait "$s3_pid" || s3_status=$?
cat "/var/tmp/edms-build-s3.log"
[ "$s3_status" = 0 ] || { echo "images/build.sh: the S3 server's image failed (exit $s3_status)" >&2; exit "$s3_status"; }
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E '^(edms-test|edms-sample)/' | sort
