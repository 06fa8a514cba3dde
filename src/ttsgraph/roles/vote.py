"""The vote role: a majority over the predecessors' answers, with no LLM call and no model.

Self-consistency as a graph: k samples feeding a vote node. The rule is `ttsgraph.vote`'s (the one
majority vote): each predecessor's answer is the task's extraction, predecessors without an answer
do not vote, ties go to the earliest predecessor in topological order. The node's text is the
winning predecessor's whole text, so a successor (or the grader) reads a real reply; when no
predecessor has an answer it is the first predecessor's text, which grades as a failure the same way.
"""

from __future__ import annotations

from ttsgraph.roles import RoleSpec
from ttsgraph.vote import vote_text

SPEC = RoleSpec("vote", (), "majority vote over its predecessors' answers (no LLM call, 0 FLOPs)",
                aggregate=vote_text, min_preds=1)
