"""PNG plots at the end of a run: reward and Avg@k over steps, and the Pass@k curve."""

from __future__ import annotations

from pathlib import Path

from resrl.trainer.logs import read_records


def write_plots(out_dir: str | Path) -> list[Path]:
    """Draw ``reward.png``, ``avg_at_k.png`` and ``pass_at_k.png`` from ``metrics.jsonl``; returns the files."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never open a window
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    train = read_records(out / "metrics.jsonl", "train")
    evals = read_records(out / "metrics.jsonl", "eval")
    written = []

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([r["step"] for r in train], [r.get("reward_mean", 0.0) for r in train], label="mean reward")
    ax.plot([r["step"] for r in train], [r.get("success_rate", 0.0) for r in train], label="success rate")
    ax.set(xlabel="step", ylabel="train", title="Training reward")
    ax.legend()
    written.append(_save(fig, out / "reward.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([r["step"] for r in evals], [r.get("avg_at_k", 0.0) for r in evals], marker="o")
    k = evals[-1]["k"] if evals else 0
    ax.set(xlabel="step", ylabel=f"Avg@{k}", title="Test split Avg@k", ylim=(0, 1))
    written.append(_save(fig, out / "avg_at_k.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, rec in (("first eval", evals[0] if evals else None), ("last eval", evals[-1] if evals else None)):
        if rec and rec.get("pass_curve"):
            ks = list(range(1, len(rec["pass_curve"]) + 1))
            ax.plot(ks, rec["pass_curve"], marker="o", label=f"{label} (step {rec['step']})")
    ax.set(xlabel="k", ylabel="Pass@k", title="Test split Pass@k", ylim=(0, 1))
    if evals:
        ax.legend()
    written.append(_save(fig, out / "pass_at_k.png"))
    return written


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
