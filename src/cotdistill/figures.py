"""How a figure is written for a person: one home for the notation every report and sentence shares (a report
may import this: it formats, it computes nothing)."""

from __future__ import annotations


def p_text(p: float) -> str:
    """A p-value as a table or sentence shows it: ``< 0.001`` below that, else three decimals."""
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def scientific(value: float) -> str:
    """``11951138751168`` -> ``1.2e13``: a FLOP count as people write one."""
    if not value:
        return "0"
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"
