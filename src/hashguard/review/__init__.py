"""Cases and the review workflow: opening cases from decisions, and the reviewers' steps."""

from hashguard.review.cases import (
    InvalidTransition,
    NotAnAllowBank,
    ReasonRequired,
    ReviewError,
    SameReviewer,
    assign,
    confirm,
    escalate,
    mark_false_positive,
    open_cases_for_run,
    open_from_result,
)

__all__ = [
    "InvalidTransition",
    "NotAnAllowBank",
    "ReasonRequired",
    "ReviewError",
    "SameReviewer",
    "assign",
    "confirm",
    "escalate",
    "mark_false_positive",
    "open_cases_for_run",
    "open_from_result",
]
