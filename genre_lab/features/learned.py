"""What a learned front end learned: its mel filterbank before and after training, as a figure
and a number, logged to the training run (`features/filterbank.png`,
`features/filterbank_change`)."""

from __future__ import annotations

import torch

#: MLflow artifact of the before/after figure.
FIGURE = "features/filterbank.png"
#: MLflow metric: relative Frobenius change of the filterbank, |after - before| / |before|.
CHANGE_METRIC = "features/filterbank_change"


def relative_change(before: torch.Tensor, after: torch.Tensor) -> float:
    return float((after - before).norm() / before.norm().clamp_min(1e-12))


def filterbank_figure(before: torch.Tensor, after: torch.Tensor, sample_rate: int):
    """Three panels over frequency: the initial filters, the learned ones, and their difference
    (as an image, mel band x frequency)."""
    import matplotlib

    matplotlib.use("Agg")  # files only: runs on headless machines
    import matplotlib.pyplot as plt

    before, after = before.float().cpu().numpy(), after.float().cpu().numpy()
    freqs = torch.linspace(0, sample_rate / 2, before.shape[1]).numpy()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4), constrained_layout=True)
    for ax, fb, title in ((axes[0], before, "initial (log-mel)"), (axes[1], after, "learned")):
        ax.plot(freqs, fb.T, linewidth=0.6)
        ax.set(title=f"mel filterbank, {title}", xlabel="frequency (Hz)", ylabel="weight")
    diff = after - before
    limit = float(abs(diff).max()) or 1.0
    image = axes[2].imshow(diff, aspect="auto", origin="lower", cmap="coolwarm", vmin=-limit, vmax=limit,
                           extent=(0, sample_rate / 2, 0, before.shape[0]))
    axes[2].set(title=f"learned - initial (change {relative_change(torch.tensor(before), torch.tensor(after)):.1%})",
                xlabel="frequency (Hz)", ylabel="mel band")
    fig.colorbar(image, ax=axes[2])
    return fig
