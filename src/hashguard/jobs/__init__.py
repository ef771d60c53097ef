"""Background jobs outside the web app: the job runner, its leases and the built-in jobs."""

from hashguard.jobs.background import Background
from hashguard.jobs.runner import Job, JobContext, JobInterrupted, JobRunner

__all__ = ["Background", "Job", "JobContext", "JobInterrupted", "JobRunner"]
