#!/bin/bash
# Runs in a container beside the S3 server (images/build.sh's debian base: python3 and rclone; boto3
# from Debian bookworm's packages mounted at $PYTHONPATH). boto3 first, then an rclone round trip:
# bucket -> folder -> a second bucket, checksums compared with what boto3 wrote at every step.
# `check.sh verify` only compares the bucket with a MANIFEST kept from an earlier run (after a restart).
set -euo pipefail
export BUCKET=${BUCKET:-spike} MANIFEST=${MANIFEST:-/tmp/manifest.json} RCLONE_CONFIG=/dev/null
export RCLONE_CONFIG_S3_TYPE=s3 RCLONE_CONFIG_S3_PROVIDER=Ceph RCLONE_CONFIG_S3_ENDPOINT="$S3_ENDPOINT" \
  RCLONE_CONFIG_S3_ACCESS_KEY_ID="$S3_ACCESS_KEY" RCLONE_CONFIG_S3_SECRET_ACCESS_KEY="$S3_SECRET_KEY"
[ "${1:-}" = verify ] || python3 "$(dirname "$0")/check.py"

# The manifest as `sha256sum -c` input, relative to a folder holding the bucket.
python3 -c 'import json,sys; [print(f"{v}  {k}") for k,v in sorted(json.load(open(sys.argv[1])).items())]' "$MANIFEST" >/tmp/sums
verify() { # folder
  (cd "$1" && sha256sum --quiet -c /tmp/sums) && [ "$(cd "$1" && find . -type f | wc -l)" = "$(wc -l </tmp/sums)" ]
}
step() { echo "+ $*"; local started=$SECONDS; "$@"; echo "  ($((SECONDS - started)) s)"; }

if [ "${1:-}" = verify ]; then
  step rclone sync "s3:$BUCKET" /tmp/copy
  verify /tmp/copy && echo "PASS bucket $BUCKET: $(wc -l </tmp/sums) objects, every sha256 as in $MANIFEST"
  exit 0
fi

step rclone sync "s3:$BUCKET" /tmp/copy
verify /tmp/copy && echo "PASS bucket -> folder: $(wc -l </tmp/sums) files, every sha256 as written"
step rclone check "s3:$BUCKET" /tmp/copy
# Back: a fresh bucket from the folder, then damage it and let sync repair it (changed, deleted, extra).
step rclone mkdir "s3:$BUCKET-back"
step rclone sync /tmp/copy "s3:$BUCKET-back"
printf 'damaged' | rclone rcat "s3:$BUCKET-back/media/doc-001.txt"
rclone deletefile "s3:$BUCKET-back/media/doc-002.txt"
printf 'stray' | rclone rcat "s3:$BUCKET-back/media/stray.txt"
step rclone sync /tmp/copy "s3:$BUCKET-back"
step rclone check --download /tmp/copy "s3:$BUCKET-back"
step rclone sync "s3:$BUCKET-back" /tmp/again
verify /tmp/again && echo "PASS folder -> bucket (damaged, re-synced) -> folder: every sha256 as written, no stray"
rclone md5sum "s3:$BUCKET" >/tmp/md5
echo "rclone md5sum: $(wc -l </tmp/md5) objects, $(grep -c '^ ' /tmp/md5 || true) without an MD5 (multipart)"
step rclone size "s3:$BUCKET"
echo "check.sh: all passed"
