"""The four provenance categories of an action, from the length-normalised probabilities p_T, p_S, p_D.

With Δ_SD = p_S − p_D, Δ_TD = p_T − p_D, Δ_TS = p_T − p_S, the rules are tried in order, the first that holds wins:

1. ``shared`` (pre-existing, not enhanced): |Δ_SD| ≤ α and |Δ_TD| ≤ α and |Δ_TS| ≤ α;
2. ``teacher`` (teacher-originated): Δ_TS > β;
3. ``student`` (student-originated): −Δ_TS > β;
4. ``boosted`` (pre-existing, boosted by distillation): |Δ_TS| ≤ β and not shared.

β is the ``margin`` key of ``trace``, ``select`` and ``select-experiment`` (it was ``beta``, which a YAML holding a
JSD loss's ``beta`` too made ambiguous; ``beta`` is still read, with a deprecation warning).
β = 0.1 is the paper's choice (0.05 and 0.15 its sensitivity points). α = 0.05 is ours: half of β, about the spread
of the three probabilities we see for an action all models already write with near certainty, so "shared" means
"all three agree to within noise".
"""

from __future__ import annotations

CATEGORIES = ("teacher", "student", "shared", "boosted")
DEFAULT_ALPHA = 0.05
DEFAULT_MARGIN = 0.1  # the paper's β
DEFAULT_BETA = DEFAULT_MARGIN  # deprecated name


def margin_of(margin: float, beta: float | None) -> float:
    """``beta=`` is the deprecated name of ``margin=``."""
    if beta is None:
        return margin
    import warnings

    warnings.warn("beta= is deprecated: the provenance threshold is now margin=", DeprecationWarning, stacklevel=3)
    return beta


def classify(p_t: float, p_s: float, p_d: float, *, alpha: float = DEFAULT_ALPHA,
             margin: float = DEFAULT_MARGIN, beta: float | None = None) -> str:
    margin = margin_of(margin, beta)
    if alpha > margin:  # "shared" would swallow actions the teacher prefers by more than β
        raise ValueError(f"alpha ({alpha}) must not exceed margin ({margin})")
    d_sd, d_td, d_ts = p_s - p_d, p_t - p_d, p_t - p_s
    if abs(d_sd) <= alpha and abs(d_td) <= alpha and abs(d_ts) <= alpha:
        return "shared"
    if d_ts > margin:
        return "teacher"
    if -d_ts > margin:
        return "student"
    return "boosted"


def classify_pair(p_t: float, p_s: float, *, margin: float = DEFAULT_MARGIN, beta: float | None = None) -> str:
    """Before distillation only teacher and student exist: teacher, student or common."""
    margin = margin_of(margin, beta)
    d_ts = p_t - p_s
    if d_ts > margin:
        return "teacher"
    if -d_ts > margin:
        return "student"
    return "common"
