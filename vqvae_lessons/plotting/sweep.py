"""The figures of lesson 4's sweep over K and D: rate against distortion, codebook use, ablations."""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure


def _sweep_lines(rows):
    """The grid rows split into the K line (at the base D) and the D line (at the base K), each sorted."""
    grid = [r for r in rows if r.get("group", "grid") == "grid"]
    base_k = max({r["K"] for r in grid}, key=lambda k: sum(r["K"] == k for r in grid))
    base_d = max({r["D"] for r in grid}, key=lambda d: sum(r["D"] == d for r in grid))
    k_line = sorted((r for r in grid if r["D"] == base_d), key=lambda r: r["K"])
    d_line = sorted((r for r in grid if r["K"] == base_k), key=lambda r: r["D"])
    return k_line, d_line, base_k, base_d


def rate_distortion(rows, highlight=None, title="Rate against distortion: bits per image and test PSNR"):
    """Left: test PSNR (dB, higher is better) against the rate ``49 log2 K`` bits per image of each grid
    point, the K line (K varies at the base D) joined and the D line (D varies at the base K, all at one
    rate) as squares. Right: the D line's PSNR against D. ``highlight`` names a point to ring in red."""
    k_line, d_line, base_k, base_d = _sweep_lines(rows)
    fig = Figure(figsize=(10.5, 4.2), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=[2, 1], sharey=True)
    left.plot([r["rate_bits"] for r in k_line], [r["test_psnr_db"] for r in k_line], marker="o",
              label=f"K varies, D = {base_d}")
    for r in k_line:
        left.annotate(f"K={r['K']}", (r["rate_bits"], r["test_psnr_db"]), textcoords="offset points",
                      xytext=(-6, 7), fontsize=8, ha="right")
    left.scatter([r["rate_bits"] for r in d_line], [r["test_psnr_db"] for r in d_line], marker="s",
                 color="tab:orange", zorder=3, label=f"D varies, K = {base_k} (right)")
    right.plot([r["D"] for r in d_line], [r["test_psnr_db"] for r in d_line], marker="s", color="tab:orange")
    right.set_xscale("log", base=2)
    right.set_xticks([r["D"] for r in d_line], [str(r["D"]) for r in d_line])
    right.set_xlabel("code size D")
    right.set_title(f"Same rate ({49 * math.log2(base_k):.0f} bits), K = {base_k}", fontsize=10)
    chosen = [r for r in rows if r["name"] == highlight]
    if chosen:
        ring = dict(s=180, facecolors="none", edgecolors="tab:red", linewidths=2, zorder=4)
        left.scatter([chosen[0]["rate_bits"]], [chosen[0]["test_psnr_db"]], label=f"selected: {highlight}", **ring)
        if chosen[0] in d_line:
            right.scatter([chosen[0]["D"]], [chosen[0]["test_psnr_db"]], **ring)
    left.margins(x=0.08, y=0.12)
    left.set_xlabel("rate: bits per image, 49 log2 K")
    left.set_ylabel("distortion: test PSNR (dB, higher is better)")
    left.legend(fontsize=8, loc="lower right")
    left.set_title("Codebook size K", fontsize=10)
    fig.suptitle(title)
    return fig


def codebook_use(rows, title="How much of the codebook is used, as K grows"):
    """Two panels over the K line: the perplexity and the number of codes used against K (log scales, with
    the line 'all K codes, equally often'), and the fraction of the K codes used."""
    k_line, _, _, base_d = _sweep_lines(rows)
    ks = np.array([r["K"] for r in k_line])
    fig = Figure(figsize=(9, 3.6), layout="constrained")
    left, right = fig.subplots(1, 2)
    left.plot(ks, ks, color="grey", linestyle=":", label="K (every code, equally often)")
    left.plot(ks, [r["codes_used"] for r in k_line], marker="s", label="codes used")
    left.plot(ks, [r["test_perplexity"] for r in k_line], marker="o", label="perplexity")
    left.set_yscale("log", base=2)
    left.set_ylabel("codes")
    left.legend(fontsize=8)
    left.set_title(f"Codes in use (D = {base_d})", fontsize=10)
    right.plot(ks, [r["codebook_usage"] for r in k_line], marker="s", label="codes used / K")
    right.plot(ks, [r["test_perplexity"] / r["K"] for r in k_line], marker="o", label="perplexity / K")
    right.set_ylim(0, 1.05)
    right.set_ylabel("fraction of K")
    right.legend(fontsize=8)
    right.set_title("Share of the codebook", fontsize=10)
    for ax in (left, right):
        ax.set_xscale("log", base=2)
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.set_xlabel("codebook size K")
    fig.suptitle(title)
    return fig


def reconstruction_rows(originals, rows, n=8, title="Test digits reconstructed by each model"):
    """The originals in the top row, then one row of reconstructions per entry of ``rows`` (a dict: label ->
    images ``(N, 28, 28[, 1])``), ``n`` columns; each row's label on its left with its mean squared error."""
    originals = np.asarray(originals)[:n].reshape(-1, 28, 28)
    labelled = [("original", originals)] + [(label, np.asarray(images)[:n].reshape(-1, 28, 28))
                                            for label, images in rows.items()]
    fig = Figure(figsize=(1.1 * len(originals) + 1.4, 1.15 * len(labelled) + 0.5), layout="constrained")
    axes = fig.subplots(len(labelled), len(originals), squeeze=False)
    for row, (label, images) in enumerate(labelled):
        for col, image in enumerate(images):
            axes[row, col].imshow(image, cmap="gray_r", vmin=0, vmax=1)
            axes[row, col].set_xticks([])
            axes[row, col].set_yticks([])
        error = "" if row == 0 else f"\nMSE {np.mean((images - originals) ** 2):.4f}"
        axes[row, 0].set_ylabel(label + error, fontsize=8, rotation=0, ha="right", va="center")
    fig.suptitle(title)
    return fig


def ablations(rows, title="What each codebook setting does (K and D fixed)"):
    """Horizontal bars, one per row (use ``row['label']``): test PSNR on the left, perplexity and codes used
    on the right."""
    labels = [r["label"] or r["name"] for r in rows]
    y = np.arange(len(rows))[::-1]
    fig = Figure(figsize=(10, 0.45 * len(rows) + 1.4), layout="constrained")
    left, right = fig.subplots(1, 2, sharey=True)
    psnr = [r["test_psnr_db"] for r in rows]
    left.barh(y, psnr, color="tab:blue")
    left.set_xlim(min(psnr) - 1.0, max(psnr) + 0.5)
    left.set_xlabel("test PSNR (dB, higher is better)")
    left.set_yticks(y, labels, fontsize=8)
    left.set_title("Distortion", fontsize=10)
    right.barh(y + 0.2, [r["codes_used"] for r in rows], height=0.4, color="tab:green", label="codes used")
    right.barh(y - 0.2, [r["test_perplexity"] for r in rows], height=0.4, color="tab:orange", label="perplexity")
    right.set_xlabel("codes")
    right.legend(fontsize=8)
    right.set_title("Codebook use", fontsize=10)
    fig.suptitle(title)
    return fig
