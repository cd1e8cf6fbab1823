"""Lesson 6's two-dimensional toy of the Fréchet distance: two point clouds, the Gaussians fitted
to them (mean, 1- and 2-sigma ellipses from the covariance) and their squared distance."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse

from ..judge import frechet_distance


def _cloud(rng, n, mean, scales, angle):
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return rng.normal(size=(n, 2)) * scales @ rotation.T + mean


def _ellipses(ax, points, colour, label):
    """The mean and the 1- and 2-sigma ellipses of the Gaussian fitted to ``points`` (N, 2)."""
    mean, cov = points.mean(axis=0), np.cov(points, rowvar=False)
    values, vectors = np.linalg.eigh(cov)
    angle = np.degrees(np.arctan2(vectors[1, 1], vectors[0, 1]))  # the long axis
    for k, style in ((1, "-"), (2, "--")):
        ax.add_patch(Ellipse(mean, 2 * k * np.sqrt(values[1]), 2 * k * np.sqrt(values[0]), angle=angle,
                             fill=False, edgecolor=colour, linestyle=style, linewidth=1.6))
    ax.plot(*mean, marker="X", markersize=11, color=colour, markeredgecolor="black", linestyle="none",
            label=f"{label}: mean, 1- and 2-sigma ellipses")
    return mean


def frechet_toy(seed=0, n=300):
    """Two 2-D clouds of ``n`` points whose covariances do not commute (differently tilted), the
    Gaussians fitted to them, and the squared Fréchet distance ``judge.frechet_distance`` gives,
    split into its mean term and its covariance term, in the title."""
    rng = np.random.default_rng(seed)
    a = _cloud(rng, n, [0.0, 0.0], [1.6, 0.5], np.radians(30))
    b = _cloud(rng, n, [1.5, 1.0], [1.1, 0.6], np.radians(-40))
    fig = Figure(figsize=(6.4, 5.4), layout="constrained")
    ax = fig.add_subplot()
    ax.scatter(*a.T, s=6, alpha=0.35, color="tab:blue", label="A: real features")
    ax.scatter(*b.T, s=6, alpha=0.35, color="tab:orange", label="B: sample features")
    mean_a = _ellipses(ax, a, "tab:blue", "A")
    mean_b = _ellipses(ax, b, "tab:orange", "B")
    ax.annotate("", xy=mean_b, xytext=mean_a, arrowprops={"arrowstyle": "<->", "color": "black"})
    distance = frechet_distance(a, b)
    mean_term = float(np.sum((mean_a - mean_b) ** 2))
    ax.set_title(f"The Fréchet distance in two dimensions: d_F² = {distance:.2f}\n"
                 f"= {mean_term:.2f} (|μ_A - μ_B|²) + {distance - mean_term:.2f} (the covariance term)")
    ax.set_xlabel("feature 1")
    ax.set_ylabel("feature 2")
    ax.set_aspect("equal")
    ax.legend(fontsize=8, loc="upper left")
    return fig
