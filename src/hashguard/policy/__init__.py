"""The policy stage: (matches, bank policies) -> Decision, as a pure function."""

from hashguard.policy.rules import REMOTE_ACTION, decide, judge

__all__ = ["REMOTE_ACTION", "decide", "judge"]
