"""Lesson 3's exercises (the VQ-VAE): ``vqvae_forward`` and ``codebook_perplexity``.

``vqvae_forward`` is the forward pass of :class:`vqvae_lessons.vqvae.VQVAE` written with the
package's quantizer functions, checked by where its three losses send their gradients;
``codebook_perplexity`` computes what :func:`vqvae_lessons.metrics.perplexity` does. One question:
``keras_example_perplexity``, a prediction of the Keras example's perplexity judged against its shipped run.
"""

from __future__ import annotations

import numpy as np
from keras import ops

from .. import metrics, quantizers
from ..gradients import gradients
from . import core
from .core import (
    Incorrect,
    NotAttempted,
    call,
    check_by_observation,
    check_number,
    close,
    describe_indices,
    nonzero,
    to_array,
)

# ---------------------------------------------------------------------------------------------
# vqvae_forward (gradients with respect to the encoder's, the codebook's and the decoder's weights)
# ---------------------------------------------------------------------------------------------
_LOSS_NAMES = ("reconstruction_loss", "codebook_loss", "commitment_loss")
_PARTS = ("encoder", "codebook", "decoder")


def vqvae_forward(images, encoder, codebook, decoder, beta, data_variance=1.0):
    """One VQ-VAE forward pass, as :class:`vqvae_lessons.vqvae.VQVAE` computes it.

    ``images`` ``(N, ...)`` in [0, 1] are centred (``- 0.5``) for the encoder, whose
    output ``z_e`` ``(N, ..., D)`` is replaced by its nearest rows of ``codebook``
    ``(K, D)`` (a Keras variable); the decoder sees them through the straight-through
    estimator and its output gets the 0.5 back. Returns a dict with ``reconstructions``
    (the images' shape), ``reconstruction_loss`` = mean((x - x_hat)**2) / data_variance,
    ``codebook_loss`` = mean((z_q - sg(z_e))**2) and ``commitment_loss`` =
    beta * mean((z_e - sg(z_q))**2).
    """
    z_e = encoder(images - 0.5)
    flat = ops.reshape(z_e, (-1, ops.shape(codebook)[-1]))
    indices = quantizers.nearest_code(flat, codebook)
    z_q = ops.reshape(ops.take(codebook, indices, axis=0), ops.shape(z_e))
    reconstructions = decoder(quantizers.straight_through(z_e, z_q)) + 0.5
    codebook_loss, commitment_loss = quantizers.vq_losses(z_e, z_q, beta)
    reconstruction_loss = ops.mean(ops.square(images - reconstructions)) / data_variance
    return {"reconstructions": reconstructions, "reconstruction_loss": reconstruction_loss,
            "codebook_loss": codebook_loss, "commitment_loss": commitment_loss}


def _nearest_by_similarity(flat, codebook):
    """The code with the largest dot product, not the smallest distance (ignores the codes' lengths)."""
    return ops.argmax(ops.matmul(flat, ops.transpose(codebook)), axis=-1)


def _forward_mistake(*, by_similarity=False, summed_pixels=False, summed_codes=False, swap=False,
                     beta_on_codebook=False, wrong_sides=False, losses_on_st=False,
                     no_straight_through=False, frozen_codebook=False, no_variance=False, no_beta=False,
                     no_centring=False):
    """A mistaken forward pass: the reference with one thing done wrong."""
    sg = ops.stop_gradient

    def forward(images, encoder, codebook, decoder, beta, data_variance=1.0):
        z_e = encoder(images if no_centring else images - 0.5)
        flat = ops.reshape(z_e, (-1, ops.shape(codebook)[-1]))
        indices = (_nearest_by_similarity if by_similarity else quantizers.nearest_code)(flat, codebook)
        z_q = ops.reshape(ops.take(sg(codebook) if frozen_codebook else codebook, indices, axis=0), ops.shape(z_e))
        z_st = quantizers.straight_through(z_e, z_q)
        reconstructions = decoder(z_q if no_straight_through else z_st) + (0.0 if no_centring else 0.5)
        q = z_st if losses_on_st else z_q
        if wrong_sides:
            codebook_loss, commitment_loss = ops.mean(ops.square(sg(q) - z_e)), beta * ops.mean(ops.square(sg(z_e) - q))
        else:
            codebook_loss, commitment_loss = quantizers.vq_losses(z_e, q, 1.0 if no_beta else beta)
        if summed_codes:  # summed over each vector's D numbers, then averaged over the vectors
            dim = ops.cast(ops.shape(z_e)[-1], z_e.dtype)
            codebook_loss, commitment_loss = codebook_loss * dim, commitment_loss * dim
        if beta_on_codebook:
            codebook_loss, commitment_loss = beta * codebook_loss, commitment_loss / beta
        if swap:
            codebook_loss, commitment_loss = commitment_loss, codebook_loss
        squares = ops.square(images - reconstructions)
        if summed_pixels:  # summed over each image's pixels, then averaged over the images
            squares = ops.sum(ops.reshape(squares, (ops.shape(squares)[0], -1)), axis=-1)
        reconstruction_loss = ops.mean(squares) / (1.0 if no_variance else data_variance)
        return {"reconstructions": reconstructions, "reconstruction_loss": reconstruction_loss,
                "codebook_loss": codebook_loss, "commitment_loss": commitment_loss}

    return forward


_FORWARD_MISTAKE_HINTS = {  # the flag of _forward_mistake: the hint for that mistake
    "by_similarity":
        'you picked the code with the largest dot product z_e . e_k: the nearest code has the smallest squared '
        'distance |z_e|^2 + |e_k|^2 - 2 z_e . e_k, and the codes\' lengths |e_k|^2 differ '
        '(quantizers.nearest_code, lesson 2).',
    "summed_pixels":
        'the reconstruction loss sums the squared errors over each image\'s pixels: VQVAE takes the mean over every '
        'pixel of every image, mean((x - x_hat)**2) / data_variance.',
    "summed_codes":
        'the codebook and commitment losses sum over each vector\'s D numbers: both are means over every number of '
        'z_e, as quantizers.vq_losses computes them.',
    "swap":
        'you swapped the codebook and commitment terms: codebook_loss = mean((z_q - sg(z_e))**2) moves the codes,'
        ' commitment_loss = beta * mean((z_e - sg(z_q))**2) moves the encoder (quantizers.vq_losses returns them '
        'in that order).',
    "beta_on_codebook":
        'beta is on the codebook term: it weights the commitment loss, beta * mean((z_e - sg(z_q))**2), not the '
        'codebook loss.',
    "no_beta":
        'you forgot beta: commitment_loss = beta * mean((z_e - sg(z_q))**2).',
    "wrong_sides":
        'the stop-gradients are on the wrong sides: the codebook loss must move only the codebook '
        '(stop_gradient(z_e)), the commitment loss only the encoder (stop_gradient(z_q)).',
    "losses_on_st":
        'you computed the codebook and commitment losses on the straight-through output: its gradient goes to '
        'z_e, so the codebook gets no gradient at all. Use the looked-up codes z_q (before straight_through) in '
        "the losses and the straight-through output only as the decoder's input.",
    "no_straight_through":
        'the decoder is fed z_q without the straight-through estimator: the encoder gets no gradient from the '
        'reconstruction loss (and the codebook gets one it should not). Decode quantizers.straight_through(z_e, '
        'z_q).',
    "frozen_codebook":
        'the codebook gets no gradient: z_q must be looked up from the codebook variable with keras.ops '
        '(ops.take), not through stop_gradient or NumPy, so that the codebook loss can move the codes.',
    "no_variance":
        'the reconstruction loss is not divided by data_variance: VQVAE uses mean((x - x_hat)**2) / '
        'data_variance.',
    "no_centring":
        'the values differ: like VQVAE, centre the images for the encoder (images - 0.5) and add 0.5 back to the '
        "decoder's output.",
}
_FORWARD_MISTAKES = [(_forward_mistake(**{flag: True}), text) for flag, text in _FORWARD_MISTAKE_HINTS.items()]


def _tiny_parts(seed, pixels, dim, num_codes):
    """A Dense encoder (pixels -> dim), a Dense decoder (dim -> pixels) and a (num_codes, dim) codebook."""
    import keras

    init = keras.initializers.GlorotUniform(seed=seed)
    encoder = keras.layers.Dense(dim, kernel_initializer=init, bias_initializer="zeros")
    decoder = keras.layers.Dense(pixels, activation="sigmoid", kernel_initializer=init)
    encoder.build((None, pixels))
    decoder.build((None, dim))
    rng = np.random.default_rng(seed)
    codebook = keras.Variable(rng.normal(scale=0.5, size=(num_codes, dim)).astype("float32"), name="codebook")
    return encoder, codebook, decoder


def _forward_outputs(result):
    """The learner's result as a dict with the four names, or a verdict saying what came back."""
    names = ("reconstructions", *_LOSS_NAMES)
    if isinstance(result, dict):
        missing = [name for name in names if name not in result]
        if missing:
            raise Incorrect(f"your dict has no {', '.join(repr(m) for m in missing)}: return a dict with the keys "
                             f"{', '.join(names)}.")
        return {name: result[name] for name in names}
    if isinstance(result, (tuple, list)) and len(result) == 4:
        return dict(zip(names, result, strict=True))
    raise Incorrect(f"expected a dict with {', '.join(names)} (or a tuple of those four), got a "
                     f"{type(result).__name__}.")


def _observe_forward(fn, images, seed, beta, data_variance, dim=3, num_codes=6):
    """Values of the four outputs and the gradient of each loss with respect to each part's weights."""
    encoder, codebook, decoder = _tiny_parts(seed, images.shape[-1], dim, num_codes)
    args = (encoder, codebook, decoder, beta, data_variance)
    out = _forward_outputs(call(fn, ops.convert_to_tensor(images), *args))
    values = {name: to_array(value) for name, value in out.items()}
    if values["reconstructions"].shape != images.shape:
        raise Incorrect(f"reconstructions should have the images' shape {images.shape}, got "
                         f"{values['reconstructions'].shape}.")
    for name in _LOSS_NAMES:
        if values[name].size != 1:
            raise Incorrect(f"{name} should be one number (a mean), got shape {values[name].shape}.")
        values[name] = values[name].reshape(())
    parts = {"encoder": encoder.trainable_variables, "codebook": [codebook], "decoder": decoder.trainable_variables}
    variables = [v for part in _PARTS for v in parts[part]]
    try:
        rows = gradients(lambda x: [_forward_outputs(call(fn, x, *args))[name] for name in _LOSS_NAMES],
                         [images], variables)
    except RuntimeError as error:
        raise NotAttempted(str(error)) from error
    for name, row in zip(_LOSS_NAMES, rows, strict=True):
        grads = iter(row[1:])
        for part in _PARTS:
            values[f"{name}/{part}"] = np.concatenate([next(grads).ravel() for _ in parts[part]])
    return values


def _forward_diagnosis(got, want):
    """What differs, for mistakes not in the table: which part gets which gradient."""
    for name in ("reconstructions", *_LOSS_NAMES):
        if not close(got[name], want[name]):
            return (f"the values of {name} differ from the VQ-VAE's (expected "
                    f"{float(np.mean(want[name])):.6g} on average, got {float(np.mean(got[name])):.6g}).")
    problems = []
    for name in _LOSS_NAMES:
        for part in _PARTS:
            flows, should = nonzero(got[f"{name}/{part}"]), nonzero(want[f"{name}/{part}"])
            if flows != should:
                problems.append(f"the {part} {'gets' if flows else 'gets no'} gradient from the {name.split('_')[0]} "
                                f"loss")
    if not problems:
        problems.append("the values are right but the gradients differ from the VQ-VAE's")
    return "; ".join(problems) + " (the reconstruction loss trains the decoder and, straight through, the encoder; "\
        "the codebook loss only the codebook; the commitment loss only the encoder)."


def _check_vqvae_forward(fn):
    rng = np.random.default_rng(80)
    cases = [(f"With images of shape {shape}, beta = {beta}, data_variance = {variance}, codes of D = {dim} "
              f"numbers, K = {num_codes}: ", (rng.uniform(size=shape).astype("float32"), seed, beta, variance, dim,
                                              num_codes))
             for shape, seed, beta, variance, dim, num_codes in [
                 ((4, 5), 1, 0.25, 0.1, 3, 6), ((2, 3, 5), 2, 0.6, 0.25, 3, 6),
                 ((1, 2, 4), 3, 1.0, 0.5, 1, 5),  # sizes of 1: one image, codes of one number
                 ((3, 4), 4, 0.25, 0.2, 2, 1)]]  # a codebook of one code
    check_by_observation(fn, cases, _observe_forward, vqvae_forward, _FORWARD_MISTAKES,
                          lambda got, want, *args: _forward_diagnosis(got, want))


def _trains_a_vqvae(forward):
    """The trial of ``vqvae_forward`` (see :func:`core.use`): one compiled training step of a small VQ-VAE trained
    through it (``VQVAE(forward=...)``, as lesson 3's demonstration fit); raises if it cannot run there."""
    from ..vqvae import VQVAE  # the model imports the quantizers, not the exercises: imported when tried

    images = np.random.default_rng(0).uniform(size=(4, 28, 28, 1)).astype("float32")
    core.trains_one_step(VQVAE("keras-example", 8, 4, quantizer="loss", forward=forward), images)


core.register(
    "vqvae_forward", reference=vqvae_forward, checker=_check_vqvae_forward, lesson=3, trial=_trains_a_vqvae,
    shows=(quantizers.nearest_code, quantizers.straight_through, quantizers.vq_losses),
    hints="""
        Follow the data: centre the images, encode them, replace each encoder vector by its nearest code, decode
        and add the 0.5 back. Each loss must reach only its own part: the reconstruction loss the decoder and,
        through the straight-through estimator, the encoder; the codebook loss only the codebook; the commitment
        loss only the encoder. Which tensor goes into the decoder, and which into the two codebook terms?

        The nearest-code search works on rows: reshape z_e to (N * 7 * 7, D) for quantizers.nearest_code, look the
        indices up in the codebook (keras.ops.take along axis 0) and reshape the result back to z_e's shape: that
        is z_q. The decoder takes the straight-through version of z_q (quantizers.straight_through, with z_e
        first); quantizers.vq_losses of z_e and z_q with beta gives the codebook and commitment losses, in that
        order. The reconstruction loss is the mean of the squared error over every pixel, divided by
        data_variance.
        """,
    error_hint="Your function receives a backend tensor of images, Keras layers and a Keras variable: use keras.ops "
               "and the package's quantizers functions, not NumPy, and return a dict.",
    mistakes=_FORWARD_MISTAKES)


# ---------------------------------------------------------------------------------------------
# codebook_perplexity
# ---------------------------------------------------------------------------------------------
def codebook_perplexity(indices, num_codes):
    """exp(entropy) of the empirical distribution of the codes in ``indices`` (any shape);
    unused codes contribute 0. Equals num_codes when all codes are used equally, 1 for one code
    (what the package's ``metrics.perplexity`` computes)."""
    counts = np.bincount(np.ravel(indices), minlength=num_codes)
    probs = counts[counts > 0] / counts.sum()
    return float(np.exp(-np.sum(probs * np.log(probs))))


def _entropy_nats(indices, num_codes, divide_by=None):
    counts = np.bincount(np.ravel(indices), minlength=num_codes)
    probs = counts / (counts.sum() if divide_by is None else divide_by)
    probs = probs[probs > 0]
    return -np.sum(probs * np.log(probs))


def _per_row_perplexity(indices, num_codes):
    rows = np.reshape(indices, (len(indices), -1)) if np.ndim(indices) > 1 else [indices]
    return np.mean([metrics.perplexity(row, num_codes) for row in rows])


def _perplexity_with_zeros(indices, num_codes):
    probs = np.bincount(np.ravel(indices), minlength=num_codes) / np.size(indices)
    return np.exp(-np.sum(probs * np.log(probs)))


def _perplexity_uint8(indices, num_codes):
    return codebook_perplexity(np.asarray(indices).astype("uint8"), num_codes)


def _perplexity_first_map(indices, num_codes):
    return codebook_perplexity(indices[0] if np.ndim(indices) > 2 else indices, num_codes)


_CODEBOOK_PERPLEXITY_MISTAKES = [
    (lambda i, k: _entropy_nats(i, k),
     "you returned the entropy: the perplexity is its exponential, exp(entropy)."),
    (lambda i, k: _entropy_nats(i, k) / np.log(2),
     "you returned the entropy in bits: the perplexity is exp(entropy in nats), or 2 ** (entropy in bits)."),
    (lambda i, k: 2 ** _entropy_nats(i, k),
     "you took 2 ** entropy with the entropy in nats (natural log): use exp(entropy); log2 goes with 2 **, ln with "
     "exp."),
    (lambda i, k: np.exp(_entropy_nats(i, k) / np.log(2)),
     "you took exp of an entropy in bits (log2): use the natural log with exp (log2 goes with 2 **)."),
    (lambda i, k: np.exp(-_entropy_nats(i, k)),
     "you got 1 / perplexity: the entropy is -sum(p * log(p)), with a minus sign."),
    (lambda i, k: float(k),
     "you returned num_codes: the perplexity weights codes by how often they are used (it equals num_codes only "
     "when all codes are used equally)."),
    (lambda i, k: float(len(np.unique(i))),
     "you returned the number of distinct codes used: the perplexity weights codes by their frequency (the two "
     "agree only when the used codes are equally frequent)."),
    (lambda i, k: np.exp(_entropy_nats(i, k, divide_by=k)),
     "you divided the counts by num_codes: the probabilities are counts / the number of indices (they sum to 1)."),
    (_per_row_perplexity,
     "you averaged one perplexity per row: compute one distribution over all the indices (flatten them first)."),
    (_perplexity_with_zeros,
     "your result is NaN: unused codes have p = 0 and 0 * log(0) is NaN in floating point; leave them out "
     "(p = p[p > 0]): they contribute 0 to the entropy."),
    (_perplexity_uint8,
     "codes above 255 are counted as other codes: a cast to uint8 (one byte) wraps code 256 round to 0. Keep the "
     "indices' integer type: large codebooks have more than 256 codes."),
    (_perplexity_first_map,
     "you counted the first code map only: indices holds a batch of maps (N, 7, 7) and a rare code may occur in "
     "any of them; flatten the whole array."),
    (lambda i, k: codebook_perplexity(i, k) / k,
     "you returned the perplexity as a share of num_codes (the codebook's usage): return the perplexity itself, "
     "the effective number of codes."),
    (lambda i, k: float(round(codebook_perplexity(i, k))),
     "you rounded the perplexity: it is an effective number of codes, not a count; return it unrounded."),
]


def _codebook_perplexity_cases():
    rng = np.random.default_rng(70)
    yield rng.choice(6, size=(4, 6), p=[0.4, 0.3, 0.2, 0.1, 0.0, 0.0]), 9
    yield rng.choice(5, size=50, p=[0.5, 0.25, 0.15, 0.1, 0.0]), 5
    yield rng.integers(0, 3, size=(2, 3, 5)), 8
    yield np.full((3, 3), 2), 4  # a single code: perplexity 1
    # a batch of maps (N, 7, 7) of a large codebook (codes above 255, in int32), with a rare code (5) in the last
    # map only
    maps = rng.choice([0, 1, 2, 256, 257, 511], size=(3, 7, 7), p=[0.3, 0.2, 0.1, 0.2, 0.1, 0.1]).astype("int32")
    maps[-1, 6, 6] = 5
    yield maps, 512
    yield np.array([7]), 8  # sizes of 1: one index
    yield np.zeros((1, 7, 7), "int64"), 1  # one map of a codebook of one code


def _check_codebook_perplexity(fn):
    cases = ((indices.copy(), num_codes) for indices, num_codes in _codebook_perplexity_cases())
    check_number(fn, cases, codebook_perplexity, _CODEBOOK_PERPLEXITY_MISTAKES, describe_indices)


core.register(
    "codebook_perplexity", reference=codebook_perplexity, checker=_check_codebook_perplexity, lesson=3,
    hints="""
        Turn the indices into a probability distribution over the num_codes codes (how often each occurs, as a
        share of all the indices), take its entropy, and undo the logarithm: the perplexity is the effective
        number of codes in use. Think about what a code that never occurs should contribute.

        Count each code with np.bincount of the flattened indices (minlength=num_codes) and divide by the number
        of indices to get p. The entropy in nats uses the natural log (np.log) and leaves out the codes with
        p = 0 (0 * log 0 counts as 0); the perplexity is np.exp of the entropy, one number.
        """,
    error_hint="indices is an integer NumPy array of any shape: flatten it (np.ravel) first; return one number.",
    mistakes=_CODEBOOK_PERPLEXITY_MISTAKES)


# ---------------------------------------------------------------------------------------------
# keras_example_perplexity: a prediction, judged against the shipped run's last validation figure
# ---------------------------------------------------------------------------------------------
_PERPLEXITY_FACTOR = 1.5  # a prediction within this factor of the measured perplexity is right


def _judge_keras_example_perplexity(answer, measured):
    """``measured``: ``{"keras example": its perplexity per batch on the validation images after the last epoch,
    "default": the same for the default model, "K": the codebook size}``."""
    guess = core.as_number(answer, "40")
    example, default, num_codes = (float(measured[key]) for key in ("keras example", "default", "K"))
    why = (f"The Keras example ends at a perplexity of {example:.1f} per batch: about {example / num_codes:.0%} of its "
           f"{num_codes:.0f} codes in an effective sense. Its codes start at random and learn only through the "
           f"codebook loss, which moves a code only when it is some encoder output's nearest: a code that no output "
           f"picks early on never moves and stays dead (lesson 2), and more epochs rarely revive it. The default "
           f"model, with an EMA codebook started by k-means and dead-code restarts, reaches {default:.1f}.")
    if guess < 1 or guess > num_codes:
        raise core.Wrong(f"a perplexity lies between 1 (one code) and K = {num_codes:.0f} (every code equally often); "
                         f"{guess:g} is outside. {why}")
    if guess > example * _PERPLEXITY_FACTOR:
        raise core.Wrong(f"{guess:g} is too hopeful. {why}")
    if guess < example / _PERPLEXITY_FACTOR:
        raise core.Wrong(f"{guess:g} is too few: the encoder's outputs do spread over several codes. {why}")
    return f"{guess:g} is within a factor {_PERPLEXITY_FACTOR} of the measurement. {why}"


core.register_question(
    "keras_example_perplexity", kind="predict", lesson=3, judge=_judge_keras_example_perplexity,
    example={"keras example": 11.5, "default": 81.2, "K": 128},
    hints="""
        The Keras example trains its codebook the way your demonstration fit did: codes started at random,
        moved only by the codebook loss, never restarted. Look at the perplexity your demonstration fit reached,
        and ask whether many more epochs on many more images can bring dead codes back.

        Recall lesson 2's dead codes: the codebook loss pulls a code towards the encoder outputs it is nearest to;
        a code that is nobody's nearest gets no gradient at all. So the codes in use are decided early, and the
        perplexity counts those in use, weighted by how often. Start from the demonstration's figure and adjust
        a little either way; it can be neither below 1 nor above K.
        """)
