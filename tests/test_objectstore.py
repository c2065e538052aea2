"""Storage bucket objects (bconnect/objectstore.py) on a real directory and a real
S3-compatible server (moto's standalone server)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from support.s3 import ACCESS_KEY, REGION, SECRET_KEY

from bconnect.objectstore import BucketError, LocalBucket, S3Bucket, open_bucket


def _roundtrip(bucket: LocalBucket | S3Bucket) -> None:
    bucket.check_writable()
    data = os.urandom(300_000)
    writer = bucket.writer("s_1/sr_1/chr_1.cast")
    for start in range(0, len(data), 4096):
        writer.write(data[start : start + 4096])
    size, digest = writer.finish()
    assert (size, digest) == (len(data), hashlib.sha256(data).hexdigest())
    assert bucket.read("s_1/sr_1/chr_1.cast") == data


def test_a_local_bucket_writes_under_its_prefix(tmp_path: Path) -> None:
    bucket = open_bucket("local", str(tmp_path / "rec"), "team/a")
    _roundtrip(bucket)
    assert (tmp_path / "rec/team/a/s_1/sr_1/chr_1.cast").is_file()
    with pytest.raises(BucketError, match="invalid object key"):
        bucket.writer("../escape")


def test_a_local_bucket_that_cannot_be_written_says_why(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(BucketError, match=r"cannot write to .*file/rec: Not a directory"):
        LocalBucket(str(blocker / "rec")).check_writable()
    with pytest.raises(BucketError, match="cannot read"):
        LocalBucket(str(tmp_path)).read("missing.cast")


def test_an_s3_bucket(s3_server) -> None:
    name = s3_server.make_bucket("objectstore-test")
    bucket = open_bucket(
        "s3",
        name,
        "pre",
        {"endpoint_url": s3_server.endpoint_url, "region": REGION},
        {"access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY},
    )
    _roundtrip(bucket)
    stored = s3_server.client().get_object(Bucket=name, Key="pre/s_1/sr_1/chr_1.cast")
    assert len(stored["Body"].read()) == 300_000


def test_a_missing_s3_bucket_cannot_be_written(s3_server) -> None:
    bucket = S3Bucket(
        "no-such-bucket",
        attributes={"endpoint_url": s3_server.endpoint_url, "region": REGION},
        secrets={"access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY},
    )
    with pytest.raises(BucketError, match="cannot write to s3 bucket no-such-bucket: .*bucket"):
        bucket.check_writable()


def test_an_unknown_plugin() -> None:
    with pytest.raises(BucketError, match="unknown storage bucket plugin 'ftp'"):
        open_bucket("ftp", "x")
