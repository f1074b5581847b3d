"""Exercises an S3 server with boto3 the way an EDMS media bucket is used (spike for issue 22).

Reads S3_ENDPOINT, S3_ACCESS_KEY, S3_SECRET_KEY, BUCKET; writes the bucket's expected content
(key -> sha256) to MANIFEST for the rclone half of the check. Prints one PASS/FAIL line per call."""
import hashlib
import json
import os
import sys
import time

import boto3
from botocore.config import Config

s3 = boto3.client(
    "s3",
    endpoint_url=os.environ["S3_ENDPOINT"],
    aws_access_key_id=os.environ["S3_ACCESS_KEY"],
    aws_secret_access_key=os.environ["S3_SECRET_KEY"],
    region_name="us-east-1",
    config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
)
bucket = os.environ["BUCKET"]
failures = []
expected = {}


def check(name, fn):
    started = time.monotonic()
    try:
        detail = fn()
        took = f" ({time.monotonic() - started:.1f} s)"
        print(f"PASS {name}" + (f": {detail}" if detail else "") + took, flush=True)
    except Exception as error:  # every failure is recorded, the run goes on
        failures.append(name)
        print(f"FAIL {name}: {type(error).__name__}: {error}", flush=True)


def body(key, size=None):
    seed = hashlib.sha256(key.encode()).digest()
    size = size or 100 + seed[0] * 4
    return (seed * (size // 32 + 1))[:size]


def put_small():
    for i in range(100):
        key, data = f"media/doc-{i:03d}.txt", body(f"doc-{i}")
        etag = s3.put_object(Bucket=bucket, Key=key, Body=data)["ETag"].strip('"')
        assert etag == hashlib.md5(data).hexdigest(), f"{key}: ETag {etag} is not the MD5"
        expected[key] = hashlib.sha256(data).hexdigest()
    return "100 objects, every ETag is the MD5 of the body"


def put_multipart():
    key, part = "media/big.bin", 5 * 1024 * 1024
    data = os.urandom(20 * 1024 * 1024)
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    parts = []
    for n in range(4):
        chunk = data[n * part : (n + 1) * part]
        etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=n + 1, Body=chunk)["ETag"]
        parts.append({"PartNumber": n + 1, "ETag": etag})
    listed = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload)["Parts"]
    assert len(listed) == 4, f"ListParts gave {len(listed)} parts"
    etag = s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
    )["ETag"].strip('"')
    digests = b"".join(hashlib.md5(data[n * part : (n + 1) * part]).digest() for n in range(4))
    assert etag == f"{hashlib.md5(digests).hexdigest()}-4", f"multipart ETag {etag}"
    got = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest(), "multipart body differs"
    expected[key] = hashlib.sha256(data).hexdigest()
    return f"20 MiB in 4 parts, ETag {etag}"


def list_all(**extra):
    keys, token, pages = [], None, 0
    while True:
        args = dict(Bucket=bucket, MaxKeys=7, **extra)
        if token:
            args["ContinuationToken"] = token
        page = s3.list_objects_v2(**args)
        pages += 1
        keys += [o["Key"] for o in page.get("Contents", [])]
        if not page["IsTruncated"]:
            return keys, pages
        token = page["NextContinuationToken"]


def list_v2():
    keys, pages = list_all()
    assert sorted(keys) == sorted(expected), f"listed {len(keys)} keys, expected {len(expected)}"
    assert keys == sorted(keys), "keys not in lexicographic order"
    return f"{len(keys)} keys in {pages} pages of 7"


def list_v2_delimiter():
    page = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    prefixes = [p["Prefix"] for p in page.get("CommonPrefixes", [])]
    assert prefixes == ["media/"], f"common prefixes {prefixes}"
    after = s3.list_objects_v2(Bucket=bucket, Prefix="media/doc-09", StartAfter="media/doc-095.txt")
    got = [o["Key"] for o in after.get("Contents", [])]
    assert got == [f"media/doc-{i:03d}.txt" for i in range(96, 100)], f"StartAfter gave {got}"
    return "CommonPrefixes and Prefix+StartAfter right"


def overwrite():
    key, data = "media/doc-005.txt", b"overwritten " * 50
    before = s3.head_object(Bucket=bucket, Key=key)["ETag"]
    after = s3.put_object(Bucket=bucket, Key=key, Body=data)["ETag"]
    assert before != after, "ETag unchanged after overwrite"
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == data, "old body served"
    expected[key] = hashlib.sha256(data).hexdigest()
    return f"ETag {before} -> {after}"


def delete_many():
    keys = [f"media/doc-{i:03d}.txt" for i in range(10, 20)] + ["media/never-existed"]
    result = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys]})
    assert not result.get("Errors"), f"errors {result.get('Errors')}"
    assert len(result.get("Deleted", [])) == 11, f"deleted {len(result.get('Deleted', []))}"
    for key in keys[:-1]:
        del expected[key]
    listed, _ = list_all()
    assert sorted(listed) == sorted(expected), f"{len(listed)} keys left, expected {len(expected)}"
    return f"11 keys (one missing) deleted, {len(listed)} left"


def extras():
    s3.head_bucket(Bucket=bucket)
    ranged = s3.get_object(Bucket=bucket, Key="media/doc-001.txt", Range="bytes=10-19")["Body"].read()
    assert ranged == body("doc-1")[10:20], f"Range GET bytes=10-19 gave {ranged!r}"
    big = s3.get_object(Bucket=bucket, Key="media/big.bin", Range="bytes=5242000-5243999")["Body"].read()
    whole = s3.get_object(Bucket=bucket, Key="media/big.bin")["Body"].read()
    assert big == whole[5242000:5244000], "Range GET across a part boundary"
    s3.copy_object(Bucket=bucket, Key="media/copy.txt", CopySource={"Bucket": bucket, "Key": "media/doc-001.txt"})
    expected["media/copy.txt"] = expected["media/doc-001.txt"]
    s3.put_object(Bucket=bucket, Key="media/méta data é.txt", Body=b"x", Metadata={"sha256": "abc"})
    expected["media/méta data é.txt"] = hashlib.sha256(b"x").hexdigest()
    meta = s3.head_object(Bucket=bucket, Key="media/méta data é.txt")["Metadata"]
    assert meta == {"sha256": "abc"}, f"metadata {meta}"
    return "HeadBucket, Range GET, CopyObject, non-ASCII key with spaces, user metadata"


def abort_multipart():
    upload = s3.create_multipart_upload(Bucket=bucket, Key="media/aborted.bin")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="media/aborted.bin", UploadId=upload, PartNumber=1, Body=b"y" * 1024)
    pending = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert any(u["UploadId"] == upload for u in pending), "upload not listed"
    s3.abort_multipart_upload(Bucket=bucket, Key="media/aborted.bin", UploadId=upload)
    pending = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert not any(u["UploadId"] == upload for u in pending), "aborted upload still listed"
    return "ListMultipartUploads, AbortMultipartUpload"


def versioning():
    other = bucket + "-versions"
    s3.create_bucket(Bucket=other)
    s3.put_bucket_versioning(Bucket=other, VersioningConfiguration={"Status": "Enabled"})
    status = s3.get_bucket_versioning(Bucket=other).get("Status")
    s3.put_object(Bucket=other, Key="k", Body=b"one")
    s3.put_object(Bucket=other, Key="k", Body=b"two")
    versions = s3.list_object_versions(Bucket=other).get("Versions", [])
    assert status == "Enabled" and len(versions) == 2, f"status {status}, {len(versions)} versions"
    return "2 versions kept"


check("CreateBucket", lambda: s3.create_bucket(Bucket=bucket) and None)
check("PutObject x100", put_small)
check("multipart 20 MiB", put_multipart)
check("ListObjectsV2 paginated", list_v2)
check("ListObjectsV2 delimiter/start-after", list_v2_delimiter)
check("overwrite", overwrite)
check("DeleteObjects", delete_many)
check("extras", extras)
check("abort multipart", abort_multipart)
check("versioning (optional)", versioning)
with open(os.environ["MANIFEST"], "w") as out:
    json.dump(expected, out, indent=0, sort_keys=True)
print(f"boto3: {len(failures)} failed" + (f": {', '.join(failures)}" if failures else ""))
sys.exit(1 if failures else 0)
