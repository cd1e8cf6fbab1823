"""The figures of digits and training: grids of images, reconstructions, training curves and a
VAE's latent space (lessons 1-3)."""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


def _grid(n, ncols, cell=1.3, extra_height=0.5):
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(cell * ncols, cell * nrows + extra_height), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[n:]:
        ax.set_axis_off()
    return fig, axes


def image_grid(images, titles=None, ncols=8, title="Images"):
    """A grid of grey images ``(N, 28, 28[, 1])`` in [0, 1], with optional per-image titles."""
    images = np.asarray(images).reshape(len(images), 28, 28)
    fig, axes = _grid(len(images), ncols)
    for i, image in enumerate(images):
        axes[i].imshow(image, cmap="gray_r", vmin=0, vmax=1)
        if titles is not None:
            axes[i].set_title(str(titles[i]), fontsize=9)
    fig.suptitle(title)
    return fig


def reconstructions(originals, reconstructed, n=10, title="Test digits (top) and their reconstructions (bottom)"):
    """Originals above their reconstructions, ``n`` columns; each column titled with its MSE."""
    originals = np.asarray(originals)[:n].reshape(-1, 28, 28)
    reconstructed = np.asarray(reconstructed)[:n].reshape(-1, 28, 28)
    fig = Figure(figsize=(1.3 * len(originals), 3.2), layout="constrained")
    axes = fig.subplots(2, len(originals), squeeze=False)
    for i, (original, image) in enumerate(zip(originals, reconstructed, strict=True)):
        for row, picture in enumerate((original, image)):
            axes[row, i].imshow(picture, cmap="gray_r", vmin=0, vmax=1)
            axes[row, i].set_xticks([])
            axes[row, i].set_yticks([])
        axes[1, i].set_xlabel(f"MSE {np.mean((original - image) ** 2):.4f}", fontsize=8)
    axes[0, 0].set_ylabel("original")
    axes[1, 0].set_ylabel("reconstruction")
    fig.suptitle(title)
    return fig


def history(logs, keys=None, title="Training curves"):
    """Loss curves from a Keras ``History.history`` dict: one panel per key, with its
    validation curve (``val_<key>``) dashed when there is one."""
    keys = keys or [k for k in logs if not k.startswith("val_")]
    fig = Figure(figsize=(3.6 * len(keys), 3.0), layout="constrained")
    axes = fig.subplots(1, len(keys), squeeze=False)[0]
    for ax, key in zip(axes, keys, strict=True):
        epochs = np.arange(1, len(logs[key]) + 1)
        ax.plot(epochs, logs[key], marker="o", markersize=3, label="training")
        if f"val_{key}" in logs:
            ax.plot(epochs, logs[f"val_{key}"], linestyle="--", marker="o", markersize=3, label="validation")
            ax.legend(fontsize=8)
        ax.set_title(key.replace("_", " "))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(key.replace("_", " "))
    fig.suptitle(title)
    return fig


def latent_scatter(z, labels, title="Where the encoder puts each test digit"):
    """2-D latent points ``(N, 2)`` coloured by digit label ``(N,)``."""
    z, labels = np.asarray(z), np.asarray(labels)
    fig = Figure(figsize=(5.5, 4.5), layout="constrained")
    ax = fig.subplots()
    points = ax.scatter(z[:, 0], z[:, 1], c=labels, cmap="tab10", s=3, alpha=0.7, vmin=-0.5, vmax=9.5)
    fig.colorbar(points, ax=ax, ticks=range(10), label="digit")
    ax.set_xlabel("z[0]")
    ax.set_ylabel("z[1]")
    ax.set_title(title)
    return fig


def latent_manifold(decode, extent=2.5, n=15, title="Digits decoded from a grid of points in latent space"):
    """Decode an ``n x n`` grid over ``[-extent, extent]^2`` with ``decode((M, 2)) -> (M, 28, 28[, 1])``."""
    axis = np.linspace(-extent, extent, n)
    grid = np.array([[x, y] for y in axis[::-1] for x in axis], dtype="float32")
    images = np.asarray(decode(grid)).reshape(n, n, 28, 28)
    canvas = images.transpose(0, 2, 1, 3).reshape(n * 28, n * 28)
    fig = Figure(figsize=(6, 6), layout="constrained")
    ax = fig.subplots()
    ax.imshow(canvas, cmap="gray_r", vmin=0, vmax=1, extent=(-extent, extent, -extent, extent))
    ax.set_xlabel("z[0]")
    ax.set_ylabel("z[1]")
    ax.set_title(title)
    return fig


def tile_images(images, ncols):
    """Tile images ``(N, H, W)`` into one ``(rows * H, ncols * W)`` array, ``ncols`` a row (zeros pad the last)."""
    n, height, width = images.shape
    nrows = -(-n // ncols)
    padded = np.zeros((nrows * ncols, height, width), images.dtype)
    padded[:n] = images
    return padded.reshape(nrows, ncols, height, width).transpose(0, 2, 1, 3).reshape(nrows * height, ncols * width)


def image_rows(rows, n=10, title="Images, one row per label"):
    """One row of ``n`` images per ``label: images (N, 28, 28, 1)`` of ``rows``, the label on the left."""
    fig = Figure(figsize=(1.2 * n, 1.3 * len(rows) + 0.6), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(rows), n))
    for row, (label, images) in enumerate(rows.items()):
        for col in range(n):
            axes[row, col].imshow(images[col, ..., 0], cmap="gray_r", vmin=0, vmax=1)
            axes[row, col].set_xticks([])
            axes[row, col].set_yticks([])
        axes[row, 0].set_ylabel(str(label).replace("codes ", "codes\n"), fontsize=8)
    fig.suptitle(title)
    return fig
