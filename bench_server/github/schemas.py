"""The parts of GitHub's `push` and `pull_request` payloads that the webhook reads, validated, so a
payload of the wrong shape (a `repository` that is a string, a commit without `id`, a pull
request number that is not a positive integer) is a 422 naming the field, never a 500. Whatever
else GitHub sends is ignored."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from bench_server.kit.inputs import LINE_PATTERN, TEXT_PATTERN

MAX_PR_NUMBER = 2**31 - 1  # runs.pull_request is a 32-bit integer

Sha = Annotated[str, Field(pattern=r"^[0-9a-f]{7,64}$")]
Line = Annotated[str, Field(max_length=300, pattern=LINE_PATTERN)]
PrNumber = Annotated[int, Field(strict=True, ge=1, le=MAX_PR_NUMBER)]


class Payload(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Repository(Payload):
    full_name: Annotated[str, Field(min_length=3, max_length=200, pattern=r"^[^/\s]+/[^/\s]+$")]


class Person(Payload):
    name: Line | None = None


class PushCommit(Payload):
    id: Sha


class HeadCommit(Payload):
    message: Annotated[str, Field(max_length=20_000, pattern=TEXT_PATTERN)] | None = None
    timestamp: datetime | None = None
    author: Person | None = None


class PushEvent(Payload):
    ref: Line
    before: Sha | None = None
    after: Sha
    deleted: bool = False
    repository: Repository
    commits: list[PushCommit] = Field(default_factory=list, max_length=10_000)
    head_commit: HeadCommit | None = None


class PullRequestHead(Payload):
    sha: Sha
    ref: Line | None = None


class PullRequest(Payload):
    number: PrNumber
    head: PullRequestHead


class PullRequestEvent(Payload):
    action: Line
    number: PrNumber | None = None
    repository: Repository
    pull_request: PullRequest
