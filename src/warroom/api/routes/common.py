"""What the route modules share: answering with a job."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from fastapi.responses import JSONResponse

from warroom.jobs import Job, JobRunner

WaitQuery = Annotated[bool, Query(description="Wait for the job to finish before answering.")]
TimeoutQuery = Annotated[
    float, Query(gt=0, le=3600, description="How long ?wait=true waits, in seconds.")
]


def job_answer(runner: JobRunner, job: Job, wait: bool, timeout: float) -> JSONResponse:
    """202 with the job and its Location; with ``wait``, 200 once it has finished."""
    if wait:
        job = runner.wait(job.id, timeout)
    location = f"/api/v1/jobs/{job.id}"
    status = 200 if job.finished else 202
    return JSONResponse(job.to_dict(), status_code=status, headers={"Location": location})
