"""Plots for the compute–quality trade-off and the selection experiment (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def tradeoff_plot(rows: list[dict], path: Path, title: str = "retention vs compute") -> None:
    """Retention (accuracy / accuracy at LSP 1.0) against compute (FLOPs, on-policy sampling included, / FLOPs at
    LSP 1.0), one point per setting, named by its label, with its paired retention interval as an error bar."""
    fig, ax = plt.subplots(figsize=(7, 5))
    xs = [r["compute"] for r in rows]
    ys = [r["retention"] for r in rows]
    ax.plot([0, 1.05], [0, 1.05], color="#bbb", linestyle=":", label="retention = compute")
    intervals = [r.get("retention_ci95") or (r["retention"], r["retention"]) for r in rows]
    below = [max(y - low, 0.0) for y, (low, _) in zip(ys, intervals)]
    above = [max(high - y, 0.0) for y, (_, high) in zip(ys, intervals)]
    ax.errorbar(xs, ys, yerr=[below, above], fmt="o", color="#e4572e", ecolor="#e4572e88", capsize=3, zorder=3,
                label="paired 95% interval")
    for r in rows:
        ax.annotate(str(r.get("label") or r["setting"]), (r["compute"], r["retention"]), textcoords="offset points",
                    xytext=(5, 4), fontsize=7)
    ax.set_xlabel("compute (FLOPs, sampling included / FLOPs at LSP 1.0)")
    ax.set_ylabel("retention (accuracy / accuracy at LSP 1.0)")
    ax.set_xlim(0, max(1.1, max(xs, default=1) + 0.1))
    ax.set_ylim(0, max(1.1, max((h for _, h in intervals), default=1) + 0.1))
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def bar_plot(labels: list[str], values: list[float], intervals: list[tuple[float, float]], path: Path, *,
             ylabel: str, title: str, ylim: tuple[float, float] = (0.0, 1.0)) -> None:
    """Bars with 95% intervals drawn on the full axis (accuracy from 0 to 1): a zoomed axis (0–0.007 once) makes
    noise look like a difference."""
    fig, ax = plt.subplots(figsize=(max(4, 0.9 * len(labels)), 3.5))
    below = [max(v - low, 0.0) for v, (low, _) in zip(values, intervals)]
    above = [max(high - v, 0.0) for v, (_, high) in zip(values, intervals)]
    ax.bar(labels, values, yerr=[below, above], color="#29335c", alpha=0.85, capsize=4)
    ax.set_ylim(*ylim)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def loss_curve_plot(metrics: list[dict], path: Path) -> None:
    """Training objective, CE and KD per step, and the validation objective where it was measured."""
    if not metrics:
        return
    fig, ax = plt.subplots(figsize=(6, 3.6))
    steps = [m["step"] for m in metrics]
    for key, style in (("loss", "-"), ("ce", ":"), ("kd", "--")):
        if any(m.get(key) for m in metrics):
            ax.plot(steps, [m.get(key) for m in metrics], style, label=f"train {key}", linewidth=1.2)
    # validation CE alone where a teacher cache does not hold the validation records (no KD was measured there)
    figure = "val_loss" if any("val_loss" in m for m in metrics) else "val_ce"
    val = [(m["step"], m[figure]) for m in metrics if figure in m]
    if val:
        label = "validation loss" if figure == "val_loss" else "validation CE"
        ax.plot(*zip(*val), "o-", color="#e4572e", label=label, markersize=4)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss per supervised token")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    ax.set_title("training curve", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
