"""The figures of lesson 6: generated digits judged, completions, class histograms, interpolations."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure


def _bare(ax, image):
    """Show a grey 28x28 image on ``ax`` with no ticks."""
    ax.imshow(np.asarray(image).reshape(28, 28), cmap="gray_r", vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])


def _cover_rows_not_given(ax, rows_kept):
    """Grey out the pixel rows below the first ``rows_kept`` code rows (4 pixels each) and mark the edge."""
    from matplotlib.patches import Rectangle

    ax.add_patch(Rectangle((-0.5, 4 * rows_kept - 0.5), 28, 28 - 4 * rows_kept, color="0.85"))
    ax.text(13.5, 14 + 2 * rows_kept, "?", ha="center", va="center", fontsize=14, color="0.4")
    ax.axhline(4 * rows_kept - 0.5, color="tab:red", linewidth=1)


def conditional_grid(images, labels, verdicts, per_class=10,
                     title="A class-conditional prior: row d asks for digit d (red: the judge reads another digit)"):
    """Row ``d``: the first ``per_class`` of ``images`` (N, 28, 28[, 1]) asked to be digit ``d``
    (``labels``), framed in red with the judge's reading where ``verdicts`` differ."""
    from matplotlib.patches import Rectangle

    labels, verdicts = np.asarray(labels), np.asarray(verdicts)
    fig = Figure(figsize=(0.72 * per_class, 8.0), layout="constrained")
    axes = fig.subplots(10, per_class)
    for d in range(10):
        for column, i in enumerate(np.flatnonzero(labels == d)[:per_class]):
            ax = axes[d, column]
            _bare(ax, images[i])
            if verdicts[i] != d:
                ax.add_patch(Rectangle((0, 0), 27, 27, fill=False, edgecolor="tab:red", linewidth=2))
                ax.set_title(f"read as {verdicts[i]}", fontsize=7, color="tab:red", pad=1)
        axes[d, 0].set_ylabel(f"asked: {d}", fontsize=9)
    fig.suptitle(title)
    return fig


def completions(originals, kept_decoded, completed, verdicts, rows_kept,
                title="Completing maps whose top code rows are given (titles: the judge's verdict)"):
    """One row per digit: the digit (``originals`` (P, 28, 28[, 1])), its kept top code rows
    decoded (``kept_decoded``), and its completions ``completed`` (P, S, 28, 28), each titled with
    the judge's ``verdicts`` (P, S)."""
    completed = np.asarray(completed)
    count, samples = completed.shape[:2]
    fig = Figure(figsize=(1.2 * (samples + 2), 1.35 * count + 0.6), layout="constrained")
    axes = fig.subplots(count, samples + 2, squeeze=False)
    for row in range(count):
        _bare(axes[row, 0], originals[row])
        _bare(axes[row, 1], kept_decoded[row])
        _cover_rows_not_given(axes[row, 1], rows_kept)
        for k in range(samples):
            _bare(axes[row, k + 2], completed[row, k])
            axes[row, k + 2].axhline(4 * rows_kept - 0.5, color="tab:red", linewidth=0.8)
            axes[row, k + 2].set_title(f"a {verdicts[row][k]}?", fontsize=8, pad=2)
    axes[0, 0].set_title("test digit", fontsize=9)
    axes[0, 1].set_title(f"top {rows_kept} code rows\nkept (decoded)", fontsize=9)
    fig.suptitle(title)
    return fig


def completions_as_asked(kept, completed, asked, verdicts, rows_kept,
                         title="The same top rows completed as each digit (red titles: the judge reads another)"):
    """One row per kept top (``kept`` (P, 28, 28[, 1])): its completions ``completed`` (P * 10, ...)
    asked to be digit ``asked`` (P * 10,), titled with the judge's ``verdicts``."""
    fig = Figure(figsize=(12, 1.35 * len(kept) + 0.6), layout="constrained")
    axes = fig.subplots(len(kept), 11, squeeze=False)
    for row in range(len(kept)):
        _bare(axes[row, 0], kept[row])
        _cover_rows_not_given(axes[row, 0], rows_kept)
        axes[row, 0].set_title("kept top", fontsize=9)
        for d in range(10):
            i = row * 10 + d
            _bare(axes[row, d + 1], completed[i])
            axes[row, d + 1].axhline(4 * rows_kept - 0.5, color="tab:red", linewidth=0.8)
            colour = "black" if verdicts[i] == asked[i] else "tab:red"
            axes[row, d + 1].set_title(f"asked {asked[i]}, read {verdicts[i]}", fontsize=8, color=colour, pad=2)
    fig.suptitle(title)
    return fig


def class_histograms(results, title="How many of each set's images the judge assigns to each digit"):
    """One bar chart per entry of ``results`` ({label: a dict with ``class_histogram`` and ``n``,
    as ``judge.judge_images`` returns}), with the uniform count marked."""
    fig = Figure(figsize=(3 * len(results), 3.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(results), sharey=True))
    for ax, (label, r) in zip(axes, results.items(), strict=True):
        ax.bar(np.arange(10), r["class_histogram"], color="tab:blue")
        ax.axhline(r["n"] / 10, color="tab:red", linestyle="--", linewidth=1, label="uniform")
        ax.set_xticks(np.arange(10))
        ax.set_xlabel("digit, as the judge reads it")
        ax.set_title(label, fontsize=10)
    axes[0].set_ylabel("images")
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    return fig


def least_confident(images, probabilities, n=8,
                    title="The samples the judge is least sure of (title: its best guess and its probability)"):
    """One row per entry of ``images`` ({label: (N, 28, 28[, 1])}): the ``n`` images whose top class
    probability in ``probabilities`` ({label: (N, 10)}) is lowest."""
    fig = Figure(figsize=(1.25 * n, 1.5 * len(images) + 0.4), layout="constrained")
    axes = fig.subplots(len(images), n, squeeze=False)
    for row, label in enumerate(images):
        probs = np.asarray(probabilities[label])
        confidence = probs.max(axis=1)
        for column, i in enumerate(np.argsort(confidence)[:n]):
            _bare(axes[row, column], images[label][i])
            axes[row, column].set_title(f"{probs[i].argmax()}? {confidence[i]:.0%}", fontsize=8, pad=2)
        axes[row, 0].set_ylabel(label, fontsize=9)
    fig.suptitle(title)
    return fig


def interpolation_strip(continuous, quantized, codes, t, show,
                        title="Along a straight line in the encoder's space (red: codes changed since the "
                              "previous image)"):
    """Two rows at the steps ``show``: ``continuous`` (decoded z_e(t), no quantizer) and ``quantized``
    (decoded codes of z_e(t)), with the 4x4 patches whose code in ``codes`` (steps, 7, 7) changed framed."""
    from matplotlib.patches import Rectangle

    fig = Figure(figsize=(12, 3.4), layout="constrained")
    axes = fig.subplots(2, len(show))
    for column, step in enumerate(show):
        _bare(axes[0, column], continuous[step])
        _bare(axes[1, column], quantized[step])
        if column:
            for r, c in zip(*np.nonzero(codes[step] != codes[show[column - 1]]), strict=True):
                axes[1, column].add_patch(Rectangle((4 * c - 0.5, 4 * r - 0.5), 4, 4, fill=False,
                                                    edgecolor="tab:red", linewidth=0.8))
        axes[0, column].set_title(f"t = {t[step]:.1f}", fontsize=9)
    axes[0, 0].set_ylabel("decoded z_e(t)\n(no quantizer)", fontsize=8)
    axes[1, 0].set_ylabel("decoded codes\nof z_e(t)", fontsize=8)
    fig.suptitle(title)
    return fig


def interpolation_curves(t, changed_from_a, changed_from_b, path_bits, typical_bits, names=("a", "b"),
                         title="Along the interpolation: code switches and the prior's verdict"):
    """Left: how many of the 49 codes differ from each end along ``t``; right: the prior's
    -log2 p(codes) along the path (``path_bits``) against the 5-95% range of ``typical_bits``."""
    fig = Figure(figsize=(11, 3.4), layout="constrained")
    left, right = fig.subplots(1, 2)
    xlabel = f"t (0: the {names[0]}, 1: the {names[1]})"
    left.step(t, changed_from_a, where="mid", label=f"codes different from the {names[0]}'s map")
    left.step(t, changed_from_b, where="mid", label=f"codes different from the {names[1]}'s map")
    left.set_xlabel(xlabel)
    left.set_ylabel("positions (of 49)")
    left.set_title("Codes switch a few positions at a time")
    left.legend(fontsize=8)
    right.plot(t, path_bits, color="tab:purple")
    right.axhspan(*np.percentile(typical_bits, [5, 95]), color="tab:gray", alpha=0.3,
                  label=f"5-95% range of {len(typical_bits):,} test digits")
    right.set_xlabel(xlabel)
    right.set_ylabel("-log2 p(codes) under the prior (bits)")
    right.set_title("How unlikely the prior finds each map")
    right.legend(fontsize=8)
    fig.suptitle(title)
    return fig
