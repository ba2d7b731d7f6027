"""A rotated Encord key reaches warm containers: at once when Encord refuses the old one, else within the max age.

An operator rotates the key by registering a new one with Encord, putting it in the secret and revoking the old
one. Warm containers still hold a client (and projects) for the old key; the fake Encord refuses it as Encord
does, and each test checks that the new key is picked up without failing anything, and that a key which is still
the secret's is reported as truly refused.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from aws_lambda_powertools.utilities.parameters import SecretsProvider
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_ssh_private_key
from encord.exceptions import AuthenticationError
from encord.objects import LabelRowV2

from label_importer.encord_target import gateway as encord_gateway
from label_importer.encord_target.gateway import encord_client, key_refused, open_project
from label_importer.model.jobs import JobStatus, RowStatus
from label_importer.runtime.settings import settings
from label_importer.store.jobs import JobStore
from local import fake_encord
from local.fake_encord import FakeEncordServer
from local.keys import generate_ssh_private_key
from local.lambda_runtime import LambdaContext, _sqs_record, cold_start
from local.pipeline import Pipeline
from local.sample_labels import image_records, jsonl
from local.stack import SECRET, TABLE, LocalStack

pytestmark = pytest.mark.integration

OBJECTS, CLASSIFICATIONS = 4, 2
"""What `image_records` puts on each image."""


@dataclass
class Rotation:
    stack: LocalStack

    @property
    def encord(self) -> FakeEncordServer:
        assert self.stack.encord is not None
        return self.stack.encord

    def rotate(self) -> str:
        """Put a new key in the secret and revoke the one it held, as an operator does; returns the new key."""
        secrets = self.stack.client("secretsmanager")
        old = secrets.get_secret_value(SecretId=SECRET)["SecretString"]
        new = generate_ssh_private_key()
        secrets.put_secret_value(SecretId=SECRET, SecretString=new)
        self.encord.revoke_key(old)
        return new


@pytest.fixture
def rotation(stack: LocalStack) -> Iterator[Rotation]:
    """Rotations for this test only: the stack's key is back in the secret, and accepted again, afterwards."""
    secrets = stack.client("secretsmanager")
    original = secrets.get_secret_value(SecretId=SECRET)["SecretString"]
    cold_start()
    try:
        yield Rotation(stack)
    finally:
        secrets.put_secret_value(SecretId=SECRET, SecretString=original)
        assert stack.encord is not None
        stack.encord.reset()  # forgets the revoked keys
        cold_start()


def read_back(stack: LocalStack, ssh_private_key: str, data_hashes: list[str]) -> dict[str, LabelRowV2]:
    """`LocalStack.read_back` with a key of our choice: the stack's own is revoked once the secret is rotated."""
    assert stack.encord is not None
    project = fake_encord.encord_client(stack.encord.url, ssh_private_key).get_project(stack.encord.project_hash)
    rows = project.list_label_rows_v2(data_hashes=data_hashes)
    with project.create_bundle() as bundle:
        for row in rows:
            row.initialise_labels(bundle=bundle)
    return {row.data_hash: row for row in rows}


def public_key_line(ssh_private_key: str) -> str:
    public = load_ssh_private_key(ssh_private_key.encode(), None).public_key()
    return public.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()


# ------------------------------------------------------------------------------------------ the fake itself


def test_the_fake_refuses_a_revoked_key_on_both_apis_and_accepts_every_other(rotation: Rotation) -> None:
    encord = rotation.encord
    revoked, other = generate_ssh_private_key(), generate_ssh_private_key()
    project = fake_encord.encord_client(encord.url, revoked).get_project(encord.project_hash)
    encord.revoke_key(public_key_line(revoked))

    with pytest.raises(AuthenticationError):
        project.list_label_rows_v2()  # v1: the AUTHENTICATION_ERROR code in the body
    with pytest.raises(AuthenticationError):
        fake_encord.encord_client(encord.url, revoked).get_project(encord.project_hash)  # v2: the 401 itself
    fake_encord.encord_client(encord.url, other).get_project(encord.project_hash).list_label_rows_v2()

    assert encord.refused_counts == {"list_label_rows": 1, "get_project": 1}
    assert fake_encord.public_key_hex(revoked) == fake_encord.public_key_hex(public_key_line(revoked))
    encord.reset()
    fake_encord.encord_client(encord.url, revoked).get_project(encord.project_hash).list_label_rows_v2()
    assert not encord.refused_counts


# ------------------------------------------------------------------------------------------ the gateway


def test_the_secret_is_fetched_once_per_max_age_and_one_client_serves_its_key(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    fetches: list[str] = []
    fetch = SecretsProvider._get

    def counted(provider: SecretsProvider, name: str, **options: object) -> str | bytes | dict[str, object]:
        fetches.append(name)
        return fetch(provider, name, **options)

    monkeypatch.setattr(SecretsProvider, "_get", counted)
    cold_start()
    current = settings()

    client = encord_client(current)
    project = open_project(current, stack.target.project_hash)

    assert all(encord_client(current) is client for _ in range(5))
    assert all(open_project(current, stack.target.project_hash) is project for _ in range(3))
    assert len(fetches) == 1  # read on every use, fetched from Secrets Manager once


def test_a_refused_key_gives_way_at_once_to_the_key_the_secret_holds_now(rotation: Rotation) -> None:
    project_hash = rotation.stack.target.project_hash
    current = settings()
    warm_client = encord_client(current)
    warm_project = open_project(current, project_hash)
    warm_project.list_label_rows_v2()

    rotation.rotate()
    assert encord_client(current) is warm_client  # Powertools' copy of the secret is minutes from expiring
    with pytest.raises(AuthenticationError):
        open_project(current, project_hash).list_label_rows_v2()

    assert key_refused(current) is True  # try once more: the secret holds another key
    client = encord_client(current)
    project = open_project(current, project_hash)
    assert client is not warm_client and project is not warm_project
    project.list_label_rows_v2()
    client.get_project(project_hash)
    assert rotation.encord.refused_counts == {"list_label_rows": 1}

    assert key_refused(current) is False  # the same key as before: truly refused, fail the job
    open_project(current, project_hash).list_label_rows_v2()  # what was dropped is built again on next use


def test_a_rotated_key_is_used_without_any_refusal_once_the_cached_secret_is_past_its_max_age(
    rotation: Rotation, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(encord_gateway, "SECRET_MAX_AGE_SECONDS", 1)
    project_hash = rotation.stack.target.project_hash
    current = settings()
    warm_project = open_project(current, project_hash)

    rotation.rotate()
    time.sleep(1.5)  # past the max age: the cached copy only gets older, however busy the machine

    project = open_project(current, project_hash)
    assert project is not warm_project
    project.list_label_rows_v2()
    assert not rotation.encord.refused_counts  # the revoked key was never tried


# ------------------------------------------------------------------------------------------ a job


def import_one_chunk(pipeline: Pipeline) -> None:
    """Deliver one queued chunk to the import function, as the event source mapping would, and settle it."""
    sqs = pipeline.stack.client("sqs")
    queue_url = pipeline.stack.queue_url
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    [message] = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=1, AttributeNames=["All"])["Messages"]
    response = pipeline.import_labels(
        {"Records": [_sqs_record(message, queue_arn)]}, LambdaContext("ImportLabelsFunction")
    )
    assert not (response or {}).get("batchItemFailures")
    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def test_a_secret_rotated_mid_job_completes_the_job_with_the_new_key(
    redeployed: Callable[..., Pipeline], rotation: Rotation
) -> None:
    pipeline = redeployed(BUNDLE_SIZE="2")
    encord = rotation.encord
    titles = [f"rotated_{i}.jpg" for i in range(6)]
    hashes = [encord.add_image(title) for title in titles]
    job_id = pipeline.drop("incoming/rotated.jsonl", jsonl(image_records(titles)))
    assert pipeline.queued_messages() == 3

    import_one_chunk(pipeline)
    assert pipeline.job(job_id).rows_imported == 2
    new_key = rotation.rotate()
    stats = pipeline.drain()

    assert stats.failures == 0
    job = pipeline.ended_with_reports(job_id)
    assert job.status is JobStatus.COMPLETED
    assert job.rows_imported == len(JobStore(TABLE).rows(job_id, RowStatus.IMPORTED)) == len(hashes)
    assert encord.refused_counts.total() == 1  # the old key was refused once, then never used again
    for data_hash, row in read_back(rotation.stack, new_key, hashes).items():
        instances = row.get_object_instances()
        assert len(instances) == len({instance.object_hash for instance in instances}) == OBJECTS, data_hash
        assert len(row.get_classification_instances()) == CLASSIFICATIONS, data_hash


def test_a_key_refused_while_importing_fails_the_job_at_once(
    redeployed: Callable[..., Pipeline], rotation: Rotation
) -> None:
    """Revoked and not rotated: the job ends FAILED at the first refused chunk, not after five deliveries of each.

    One chunk in flight per container: with two, the other chunk of the batch, verified before the first failed
    the job, would make its own one attempt and count a second refusal."""
    pipeline = redeployed(BUNDLE_SIZE="2", CHUNKS_IN_FLIGHT="1")
    encord = rotation.encord
    titles = [f"revoked_{i}.jpg" for i in range(6)]
    for title in titles:
        encord.add_image(title)
    job_id = pipeline.drop("incoming/revoked.jsonl", jsonl(image_records(titles)))
    import_one_chunk(pipeline)
    key = rotation.stack.client("secretsmanager").get_secret_value(SecretId=SECRET)["SecretString"]
    encord.revoke_key(key)
    encord.reset_counts()

    stats = pipeline.drain()

    assert stats.failures == 0  # no delivery went back to the queue
    job = pipeline.ended_with_reports(job_id)
    assert job.status is JobStatus.FAILED
    assert job.failure and job.failure.startswith("ENCORD_KEY_UNUSABLE: the Encord key was refused")
    assert key not in job.failure and key not in pipeline.report(job_id, "summary.txt").decode()
    assert (job.rows_imported, encord.write_requests()) == (2, 0)  # the chunks after it were dropped
    assert encord.refused_counts.total() == 1  # the secret, read again, holds the same key: not tried twice


def test_a_warm_validator_holding_a_rotated_key_uses_the_new_one_at_once(
    pipeline: Pipeline, rotation: Rotation
) -> None:
    encord = rotation.encord
    titles = [f"warm_{i}.jpg" for i in range(2)]
    for title in titles:
        encord.add_image(title)
    assert pipeline.run("incoming/warm.jsonl", jsonl(image_records(titles))).status is JobStatus.COMPLETED
    rotation.rotate()

    job = pipeline.run(
        "incoming/after rotation.jsonl", jsonl(image_records(titles, seed=8), header={"mode": "replace"})
    )

    assert job.status is JobStatus.COMPLETED  # not FAILED with ENCORD_KEY_UNUSABLE by the warm validator
    # The validator's first request; the importer, loaded in this same process, shares the client it refreshed.
    assert encord.refused_counts.total() == 1
