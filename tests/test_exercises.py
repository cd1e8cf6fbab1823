"""The exercise checkers: right answers pass, stubs are "not attempted", and realistic mistakes
fail with a hint that names the mistake. check() must never raise at the learner."""

import dataclasses
import functools
import re

import keras
import numpy as np
import pytest
from checking import assert_incorrect, pasted, verdict  # tests/checking.py
from keras import ops

from vqvae_lessons import exercises, metrics, quantizers, vae
from vqvae_lessons.exercises import check, core, hint, names, solution, solution_markdown

sg = ops.stop_gradient


# -- what every exercise shares ------------------------------------------------------------------
def test_names_lists_every_exercise():
    assert names() == ["reparameterize", "kl_divergence", "vae_loss", "pairwise_sq_distances", "nearest_code",
                       "straight_through", "vq_losses", "ema_update", "encoder_gradient", "vqvae_forward",
                       "codebook_perplexity", "rate_distortion_knee", "dead_codes",
                       "causal_mask", "gate", "nll_bits_per_image", "sample_codes", "frechet_distance",
                       "inception_score", "fsq_quantize", "entropy_terms", "rotate_to", "residual_stage",
                       "causal_attention", "attention_dot_products", "cached_attention_step", "maskgit_training_loss",
                       "maskgit_keep"]
    assert exercises.questions() == ["vae_kl_nats", "unpicked_codes", "keras_example_perplexity", "codebook_budget",
                                     "gated_bits_per_image", "real_inception_score", "fsq_gradient_at_zero",
                                     "lfq_penalty_gap", "maskgit_steps_fixed"]


@pytest.mark.parametrize("name", names())
def test_reference_solution_is_correct(capsys, name):
    result, out = verdict(capsys, name, pasted(name))
    assert result is True and out.strip() == "Correct", out


@pytest.mark.parametrize("name", names())
def test_the_packages_own_function_is_not_the_learners(capsys, name):
    reference = exercises._EXERCISES[name].reference
    for packages in (reference, functools.partial(reference), lambda *args: reference(*args)):
        result, out = verdict(capsys, name, packages)
        assert result is None and out.startswith("Not attempted:") and "package's" in out, out
    assert check(name, pasted(name)) is True  # a copy of its code, written in the notebook, is the learner's
    capsys.readouterr()


def test_a_private_function_of_the_package_is_not_the_learners_either(capsys):
    from vqvae_lessons.priors import pixelcnn

    result, out = verdict(capsys, "gate", pixelcnn._gate)
    assert result is None and "vqvae_lessons.priors.pixelcnn._gate is the package's own function" in out


@pytest.mark.parametrize("name", names())
def test_stubs_are_not_attempted(capsys, name):
    def raises(*args):
        # Your code here
        raise NotImplementedError

    def returns_none(*args):
        pass

    def returns_ellipsis(*args):
        return ...

    for stub in (raises, returns_none, returns_ellipsis, None, ...):
        result, out = verdict(capsys, name, stub)
        assert result is None, out
        assert out.startswith("Not attempted:"), out


@pytest.mark.parametrize("name", names())
def test_an_exception_in_the_learners_function_is_reported_not_raised(capsys, name):
    def broken(*args):
        return {}["no such key"] if args else None

    out = assert_incorrect(capsys, name, broken, "KeyError", "no such key")
    assert exercises._EXERCISES[name].error_hint in out

    def wrong_arity():
        return 0

    assert_incorrect(capsys, name, wrong_arity, "TypeError")


@pytest.mark.parametrize("name", names())
@pytest.mark.parametrize("result", ["a string", {"a": 1}, [[1, 2], [3]], object()])
def test_odd_results_are_incorrect_not_errors(capsys, name, result):
    assert check(name, lambda *args: result) is False
    assert capsys.readouterr().out.startswith("Incorrect:")


@pytest.mark.parametrize("name", names())
def test_every_mistake_in_the_table_gets_its_own_hint(capsys, name):
    mistakes = exercises._EXERCISES[name].mistakes
    assert len(mistakes) >= 3
    for mistake, mistake_hint in mistakes:
        assert_incorrect(capsys, name, mistake, mistake_hint)


def test_unknown_name_lists_the_exercises(capsys):
    result, out = verdict(capsys, "reparametrise", lambda *a: 0)
    assert result is None
    assert out.startswith("Not attempted:") and "'reparameterize'" in out and "sample_codes" in out
    assert hint("nope") is None and solution(["not", "a", "name"]) is None
    assert "The exercises are" in capsys.readouterr().out


def test_passing_a_result_instead_of_the_function(capsys):
    assert_incorrect(capsys, "nearest_code", np.zeros(3), "function itself")


@pytest.mark.parametrize("name", names())
def test_solution_and_hint(capsys, name):
    source = solution(name)
    assert f"def {name}(" in source and f"def {name}(" in capsys.readouterr().out
    assert hint(name) in capsys.readouterr().out


def test_notebook_display_is_an_html_box(monkeypatch):
    shown = []
    monkeypatch.setattr(core, "_notebook_display", lambda: lambda obj, raw: shown.append(obj))
    assert check("causal_mask", pasted("causal_mask")) is True
    assert check("causal_mask", lambda k, t: np.ones((k, k))) is False
    assert shown[0]["text/plain"] == "Correct" and "<div" in shown[0]["text/html"]
    assert shown[1]["text/plain"].startswith("Incorrect:") and "#b71c1c" in shown[1]["text/html"]


# -- hints in levels, the checker's own failures, the solution as Markdown ---------------------------
def source_lines(name):
    """The lines of the reference's source (what solution shows) a hint must not give away."""
    return [line.strip() for line in exercises.solution_source(name).splitlines()
            if len(line.strip()) >= 12]


@pytest.mark.parametrize("name", names())
def test_hints_come_in_levels_and_the_first_gives_no_code(capsys, name):
    hints = exercises._EXERCISES[name].hints
    assert len(hints) >= 2 and len(set(hints)) == len(hints)
    for line in source_lines(name):
        assert line not in hints[0], f"hint 1 of {name} contains the reference's line {line!r}"
    for level, text in enumerate(hints, start=1):
        assert hint(name, level) == text
        assert f"Hint {level} of {len(hints) + 1}: {text}" in capsys.readouterr().out
    for level in (len(hints) + 1, len(hints) + 5):  # the last level points to the solution
        assert f"solution({name!r})" in hint(name, level)
        assert capsys.readouterr().out.startswith(f"Hint {len(hints) + 1} of {len(hints) + 1}:")


@pytest.mark.parametrize("name", names())
def test_the_middle_hint_is_the_approach_not_the_code(name):
    """At least three levels (#28): a nudge, then the approach (which operations, which shapes) with no line of the
    solution, then (after any further hints) the solution on request (the folded block, or solution())."""
    hints = exercises._EXERCISES[name].hints
    assert len(hints) >= 2, "hint 1 a nudge, hint 2 the approach; the last level is the solution"
    for line in source_lines(name):
        if not line.startswith(("def ", '"""', "#", "return ")) and "=" in line:
            assert line not in hints[1], f"hint 2 of {name} gives the solution's line {line!r}"
    statements = re.findall(r"\b[A-Za-z_]\w* = [^,;]*?\w\(", hints[1])  # name = ...call(: a line of code
    assert not statements, f"hint 2 of {name} writes code: {statements}"


@pytest.mark.parametrize("level", [0, -1, 1.5, "2", None, True])
def test_a_bad_hint_level_gets_a_message_not_an_error(capsys, level):
    message = hint("vq_losses", level)
    assert isinstance(message, str) and "hint levels are whole numbers from 1 to 3" in message
    assert message in capsys.readouterr().out
    assert hint("no_such_exercise", level) is None
    assert "The exercises are" in capsys.readouterr().out


def test_a_checker_that_fails_is_not_blamed_on_the_learner(capsys, monkeypatch):
    def broken_checker(fn):
        raise IndexError("index 7 is out of bounds")

    exercise, learners = exercises._EXERCISES["dead_codes"], pasted("dead_codes")
    monkeypatch.setitem(exercises._EXERCISES, "dead_codes", core.Exercise(
        exercise.reference, broken_checker, exercise.hints, exercise.error_hint, exercise.mistakes, exercise.lesson))
    result, out = verdict(capsys, "dead_codes", learners)
    assert result is None, out
    assert out.startswith("Not checked: the checker failed (a bug in vqvae_lessons, not in your code): IndexError: "
                          "index 7 is out of bounds; please report it"), out
    assert "Incorrect" not in out


@pytest.mark.parametrize("name", names())
def test_solution_markdown_is_a_collapsed_block_of_the_reference(capsys, name):
    markdown = solution_markdown(name)
    assert markdown.startswith(f"<details>\n<summary>Solution: {name} (click to open)</summary>")
    assert markdown.rstrip().endswith("</details>") and "```python\n" in markdown
    assert exercises.solution_source(name) in markdown
    assert solution(name) in markdown  # the same source solution() shows
    assert solution_markdown("nope") is None


def test_references_are_the_packages_own_functions():
    from vqvae_lessons.priors import masked

    reference = {name: exercise.reference for name, exercise in exercises._EXERCISES.items()}
    assert reference["reparameterize"] is vae.reparameterize
    assert reference["pairwise_sq_distances"] is quantizers.pairwise_sq_distances
    assert reference["nearest_code"] is quantizers.nearest_code
    assert reference["straight_through"] is quantizers.straight_through
    assert reference["vq_losses"] is quantizers.vq_losses
    assert reference["causal_mask"] is exercises.causal_mask  # written out so its pasted solution runs
    for k, mask_type in [(k, t) for k in (1, 3, 5, 7) for t in "AB"]:
        np.testing.assert_array_equal(exercises.causal_mask(k, mask_type), masked.causal_mask(k, mask_type))
    # a solution that calls a package function shows it; no solution is a single call of the package (#28)
    assert metrics.code_counts in exercises._EXERCISES["dead_codes"].sources
    assert "def code_counts(" in exercises.solution_source("dead_codes")
    for name, package_function in [("kl_divergence", vae.gaussian_kl), ("codebook_perplexity", metrics.perplexity)]:
        assert package_function not in exercises._EXERCISES[name].sources
        arguments = [np.random.default_rng(0).normal(size=(5, 3)).astype("float32")] * 2 if name == "kl_divergence" \
            else [np.array([[0, 1, 1], [2, 1, 0]]), 4]
        np.testing.assert_allclose(ops.convert_to_numpy(pasted(name)(*arguments)),
                                   ops.convert_to_numpy(package_function(*arguments)), rtol=1e-6)
    assert exercises.solution_source("nope") is None


# -- reparameterize ------------------------------------------------------------------------------
def test_reparameterize_alternatives(capsys):
    assert check("reparameterize", pasted("reparameterize")) is True
    assert check("reparameterize", vae.reparameterize) is None  # the package's own
    assert check("reparameterize", lambda m, lv, e: m + np.sqrt(np.exp(lv)) * e) is True


def test_reparameterize_mistakes(capsys):
    assert_incorrect(capsys, "reparameterize", lambda m, lv, e: m + np.exp(lv) * e, "variance", "standard deviation")
    assert_incorrect(capsys, "reparameterize", lambda m, lv, e: m + ops.sqrt(lv) * e, "sqrt(log_var)")
    assert_incorrect(capsys, "reparameterize", lambda m, lv, e: m + np.exp(lv / 2), "forgot eps")
    assert_incorrect(capsys, "reparameterize", lambda m, lv, e: m + np.exp(lv / 2) * np.random.normal(size=m.shape),
                     "different result each time")
    assert_incorrect(capsys, "reparameterize", lambda m, lv, e: (m + np.exp(lv / 2) * e).T, "transpose")


# -- kl_divergence -------------------------------------------------------------------------------
def test_kl_divergence_alternatives(capsys):
    assert check("kl_divergence", pasted("kl_divergence")) is True
    assert check("kl_divergence", vae.gaussian_kl) is None  # the package's own
    assert check("kl_divergence", lambda m, lv: 0.5 * np.sum(np.exp(lv) + m**2 - 1 - lv, axis=1)) is True


def test_kl_divergence_mistakes(capsys):
    assert_incorrect(capsys, "kl_divergence", lambda m, lv: 0.5 * np.sum(1 + lv - m**2 - np.exp(lv), axis=1),
                     "wrong sign")
    assert_incorrect(capsys, "kl_divergence", lambda m, lv: -0.5 * np.mean(1 + lv - m**2 - np.exp(lv), axis=-1),
                     "averaged over the latent dimensions")
    assert_incorrect(capsys, "kl_divergence", lambda m, lv: -0.5 * np.sum(1 + lv - m**2 - np.exp(lv), axis=0),
                     "axis 0", "(L,)")
    assert_incorrect(capsys, "kl_divergence", lambda m, lv: -np.sum(1 + lv - m**2 - np.exp(lv), axis=-1), "0.5")
    assert_incorrect(capsys, "kl_divergence", lambda m, lv: -0.5 * np.sum(1 + np.exp(lv) - m**2 - np.exp(lv), 1),
                     "variance where the log-variance belongs")
    assert_incorrect(capsys, "kl_divergence", lambda m, lv: -0.5 * ops.sum(1 + lv - m**2 - ops.exp(lv / 2), axis=-1),
                     "standard deviation")


# -- pairwise_sq_distances -----------------------------------------------------------------------
def test_pairwise_sq_distances_alternatives(capsys):
    assert check("pairwise_sq_distances", pasted("pairwise_sq_distances")) is True
    assert check("pairwise_sq_distances", quantizers.pairwise_sq_distances) is None  # the package's own
    assert check("pairwise_sq_distances", lambda x, c: ((x[:, None] - c[None]) ** 2).sum(-1)) is True


def test_pairwise_sq_distances_mistakes(capsys):
    def no_two(x, c):
        return (x**2).sum(1, keepdims=True) + (c**2).sum(1) - x @ c.T

    def transposed(x, c):
        return ((c[:, None] - x[None]) ** 2).sum(-1)

    def no_keepdims(x, c):
        return (x**2).sum(1) + (c**2).sum(1) - 2 * x @ c.T

    name = "pairwise_sq_distances"
    assert_incorrect(capsys, name, no_two, "factor 2")
    assert_incorrect(capsys, name, transposed, "transposed")
    assert_incorrect(capsys, name, lambda x, c: np.linalg.norm(x[:, None] - c[None], axis=-1), "square root")
    assert_incorrect(capsys, name, no_keepdims, "added as a row", "keepdims")  # the case N == K comes first


# -- nearest_code --------------------------------------------------------------------------------
def test_nearest_code_alternatives(capsys):
    assert check("nearest_code", pasted("nearest_code")) is True
    assert check("nearest_code", quantizers.nearest_code) is None  # the package's own
    assert check("nearest_code", lambda x, c: [int(np.argmin(((c - v) ** 2).sum(1))) for v in x]) is True


def test_nearest_code_mistakes(capsys):
    def distances(x, c):
        return ((x[:, None] - c[None]) ** 2).sum(-1)

    assert_incorrect(capsys, "nearest_code", lambda x, c: np.argmax(distances(x, c), axis=1), "argmax", "argmin")
    assert_incorrect(capsys, "nearest_code", lambda x, c: np.argmin(distances(x, c), axis=0), "axis 0")
    assert_incorrect(capsys, "nearest_code", lambda x, c: distances(x, c).min(axis=1), "argmin, not min")
    assert_incorrect(capsys, "nearest_code", lambda x, c: np.argmax(x @ c.T, axis=1), "dot product")
    assert_incorrect(capsys, "nearest_code", lambda x, c: np.argmin(distances(x, c), 1).astype("float32"),
                     "integer indices")


# -- straight_through ----------------------------------------------------------------------------
def test_straight_through_alternatives(capsys):
    assert check("straight_through", pasted("straight_through")) is True
    assert check("straight_through", quantizers.straight_through) is None  # the package's own
    assert check("straight_through", lambda x, q: x + sg(q) - sg(x)) is True


def test_straight_through_mistakes(capsys):
    no_gradient = "gradient with respect to x is zero"
    assert_incorrect(capsys, "straight_through", lambda x, q: q, no_gradient, "x + stop_gradient(q - x)")
    assert_incorrect(capsys, "straight_through", lambda x, q: x + (q - x), no_gradient)
    # Through NumPy: TensorFlow's eager tensors convert (and lose their gradient); JAX's traced ones refuse to.
    through_numpy = no_gradient if keras.backend.backend() != "jax" else "receives backend tensors, not NumPy arrays"
    assert_incorrect(capsys, "straight_through", lambda x, q: ops.convert_to_numpy(x + sg(q - x)), through_numpy)
    assert_incorrect(capsys, "straight_through", lambda x, q: x, "value is x")
    assert_incorrect(capsys, "straight_through", lambda x, q: sg(x) + q - x, "minus the identity")
    assert_incorrect(capsys, "straight_through", lambda x, q: q + x - sg(x), "flows into q")
    assert_incorrect(capsys, "straight_through", lambda x, q: 2 * x + sg(q - 2 * x), "not the identity")


# -- vq_losses -----------------------------------------------------------------------------------
def mse(a, b):
    return ops.mean(ops.square(a - b))


def test_vq_losses_alternatives(capsys):
    assert check("vq_losses", pasted("vq_losses")) is True
    assert check("vq_losses", quantizers.vq_losses) is None  # the package's own
    assert check("vq_losses", lambda x, q, beta: [mse(sg(x), q), beta * mse(sg(q), x)]) is True


def test_vq_losses_mistakes(capsys):
    name = "vq_losses"
    assert_incorrect(capsys, name, lambda x, q, b: (b * mse(x, sg(q)), mse(q, sg(x))), "swapped")
    assert_incorrect(capsys, name, lambda x, q, b: (mse(q, sg(x)), mse(x, sg(q))), "forgot beta")
    assert_incorrect(capsys, name, lambda x, q, b: (b * mse(q, sg(x)), mse(x, sg(q))), "beta is on the wrong loss")
    assert_incorrect(capsys, name, lambda x, q, b: (mse(q, x), b * mse(x, sg(q))),
                     "codebook loss is missing its stop_gradient")
    assert_incorrect(capsys, name, lambda x, q, b: (mse(q, x), b * mse(x, q)), "both losses are missing")
    assert_incorrect(capsys, name, lambda x, q, b: mse(q, sg(x)) + b * mse(x, sg(q)), "pair")
    assert_incorrect(capsys, name, lambda x, q, b: (ops.mean(ops.square(q - sg(x)), axis=-1),
                                                    b * ops.mean(ops.square(x - sg(q)), axis=-1)), "single number")
    # not in the table: the diagnosis names each gradient that is wrong
    assert_incorrect(capsys, name, lambda x, q, b: (mse(sg(q), sg(x)), b * mse(x, sg(q))),
                     "no gradient with respect to q")


# -- codebook_perplexity -------------------------------------------------------------------------
def test_codebook_perplexity_alternatives(capsys):
    def with_log2(indices, num_codes):
        _, counts = np.unique(indices, return_counts=True)
        p = counts / counts.sum()
        return 2 ** -(p * np.log2(p)).sum()

    def with_epsilon(indices, num_codes):
        p = np.bincount(np.ravel(indices), minlength=num_codes) / np.size(indices)
        return np.exp(-np.sum(p * np.log(p + 1e-10)))

    assert check("codebook_perplexity", pasted("codebook_perplexity")) is True
    assert check("codebook_perplexity", metrics.perplexity) is None  # the package's own
    assert check("codebook_perplexity", with_log2) is True
    assert check("codebook_perplexity", with_epsilon) is True
    assert check("codebook_perplexity", lambda i, k: quantizers.batch_perplexity(i, k)[0]) is True


def test_codebook_perplexity_mistakes(capsys):
    def probs(indices, num_codes):
        p = np.bincount(np.ravel(indices), minlength=num_codes) / np.size(indices)
        return p[p > 0]

    name = "codebook_perplexity"
    assert_incorrect(capsys, name, lambda i, k: np.exp(-np.sum(probs(i, k) * np.log2(probs(i, k)))), "bits", "log2")
    assert_incorrect(capsys, name, lambda i, k: 2 ** -np.sum(probs(i, k) * np.log(probs(i, k))), "2 **")
    assert_incorrect(capsys, name, lambda i, k: -np.sum(probs(i, k) * np.log(probs(i, k))), "exp(entropy)")
    assert_incorrect(capsys, name, lambda i, k: len(np.unique(i)), "distinct codes")

    def counts_unused(indices, num_codes):
        p = np.bincount(np.ravel(indices), minlength=num_codes) / np.size(indices)
        return np.exp(-np.sum(p * np.log(p)))

    assert_incorrect(capsys, name, counts_unused, "NaN", "p > 0")
    assert_incorrect(capsys, name, lambda i, k: np.bincount(np.ravel(i), minlength=k), "single number")


# -- causal_mask ---------------------------------------------------------------------------------
def test_causal_mask_alternatives(capsys):
    def vectorised(k, mask_type):
        rows, cols = np.mgrid[:k, :k]
        before = rows * k + cols < (k // 2) * k + k // 2
        return before | ((rows == k // 2) & (cols == k // 2) & (mask_type == "B"))  # booleans are fine

    assert check("causal_mask", vectorised) is True


def test_causal_mask_mistakes(capsys):
    def mask(k, mask_type, right=False, left=True, centre=None):
        m = np.zeros((k, k))
        m[: k // 2] = 1
        m[k // 2, : k // 2] = 1 if left else 0
        if right:
            m[k // 2, k // 2 + 1:] = 1
        m[k // 2, k // 2] = (mask_type == "B") if centre is None else centre
        return m

    name = "causal_mask"
    assert_incorrect(capsys, name, lambda k, t: mask(k, t, centre=t == "A"), "centre is the wrong way round")
    assert_incorrect(capsys, name, lambda k, t: mask(k, t, centre=0), "type 'B' keeps it")  # ignores mask_type
    assert_incorrect(capsys, name, lambda k, t: mask(k, t, right=True), "right of the centre")
    assert_incorrect(capsys, name, lambda k, t: mask(k, t).T, "transposed")
    assert_incorrect(capsys, name, lambda k, t: mask(k, t, left=False), "left of the centre in the centre row")
    assert_incorrect(capsys, name, lambda k, t: 2 * mask(k, t), "only 0 and 1")
    assert_incorrect(capsys, name, lambda k, t: mask(k, t)[None], "expected shape (k, k)")


# -- sample_codes --------------------------------------------------------------------------------
def softmax(logits):
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_sample_codes_alternatives(capsys):
    def inverse_cdf(logits_fn, shape, rng):
        n, h, w = shape
        codes = np.zeros(shape, dtype="int32")
        for i in range(h):
            for j in range(w):
                cdf = np.cumsum(softmax(np.asarray(logits_fn(codes))[:, i, j]), axis=-1)
                codes[:, i, j] = np.minimum((cdf < rng.random((n, 1))).sum(-1), cdf.shape[-1] - 1)
        return codes

    def gumbel_max(logits_fn, shape, rng):
        codes = np.zeros(shape, dtype=int)
        for i, j in np.ndindex(*shape[1:]):
            logits = ops.convert_to_numpy(logits_fn(ops.convert_to_tensor(codes)))[:, i, j]
            codes[:, i, j] = np.argmax(logits + rng.gumbel(size=logits.shape), axis=-1)
        return codes

    assert check("sample_codes", inverse_cdf) is True
    assert check("sample_codes", gumbel_max) is True


def loop(draw, *, columns_first=False, once=False, dtype=int):
    """A learner's sampling loop, with ``draw(probs (N, K), rng) -> (N,)``."""

    def sample(logits_fn, shape, rng):
        n, h, w = shape
        codes = np.zeros(shape, dtype=dtype)
        logits = np.asarray(logits_fn(codes))
        positions = [(i, j) for j in range(w) for i in range(h)] if columns_first else np.ndindex(h, w)
        for i, j in positions:
            if not once:
                logits = np.asarray(logits_fn(codes))
            codes[:, i, j] = draw(softmax(logits[:, i, j]), rng)
        return codes

    return sample


def choice(probs, rng):
    return [rng.choice(len(p), p=p) for p in probs]


def test_sample_codes_mistakes(capsys):
    name = "sample_codes"
    assert verdict(capsys, name, loop(choice)) == (True, "Correct\n")
    assert_incorrect(capsys, name, loop(choice, once=True), "called logits_fn once")
    assert_incorrect(capsys, name, loop(choice, columns_first=True), "row by row")
    assert_incorrect(capsys, name, loop(lambda p, rng: p.argmax(-1)), "argmax")
    assert_incorrect(capsys, name, loop(lambda p, rng: [np.random.choice(len(q), p=q) for q in p]), "rng you are given")
    assert_incorrect(capsys, name, loop(lambda p, rng: rng.integers(0, p.shape[-1], len(p))), "at position")
    assert_incorrect(capsys, name, loop(choice, dtype=float), "integer indices", "dtype=int")

    def logits_as_probabilities(logits_fn, shape, rng):
        codes = np.zeros(shape, dtype=int)
        for i, j in np.ndindex(*shape[1:]):
            logits = np.asarray(logits_fn(codes))[:, i, j]
            codes[:, i, j] = [rng.choice(len(row), p=row) for row in logits]
        return codes

    assert_incorrect(capsys, name, logits_as_probabilities, "raised ValueError", "softmax")

    def wrong_input(logits_fn, shape, rng):
        return np.asarray(logits_fn(np.zeros(shape[1:], dtype=int))).argmax(-1)

    assert_incorrect(capsys, name, wrong_input, "logits_fn takes the whole map")


def test_the_last_hint_points_to_what_a_lesson_can_run(capsys):
    """A lesson imports only check and hint: the hints end at the folded solution, or at an import that works."""
    for name in exercises.names():
        last = hint(name, 99)
        assert "folded solution" in last and f"solution({name!r})" in last, name
        namespace = {}
        exec(last.split("or run ")[1].rstrip("."), namespace)  # the import and the call, as a learner types them
        capsys.readouterr()


# -- use: what the learner writes is what runs ---------------------------------------------------
@pytest.mark.parametrize("name", names())
def test_use_runs_the_learners_function_when_it_passes_else_the_packages(capsys, name):
    exercise = exercises._EXERCISES[name]
    learners = pasted(name)
    assert exercises.use(name, learners) is learners
    assert capsys.readouterr().out.startswith(f"Using yours: your {name} passes its check")

    def stub(*args):
        raise NotImplementedError

    wrong, _ = exercise.mistakes[0]
    for not_yet, why in [(stub, "yours is not written yet"), (wrong, "yours does not pass its check yet"),
                         (exercise.reference, "yours is not written yet")]:
        assert exercises.use(name, not_yet) is exercise.reference
        out = capsys.readouterr().out
        assert out.startswith(f"Using the package's: {why}") and f"the package's {name}" in out, out
        assert out.count("\n") == 1, out  # one line, and no verdict box of check's


def test_use_falls_back_when_the_learners_function_cannot_run_inside_the_model(capsys, monkeypatch):
    exercise = exercises._EXERCISES["kl_divergence"]

    def graph_only(fn):
        raise TypeError("Cannot convert a symbolic tf.Tensor to a NumPy array")

    monkeypatch.setitem(exercises._EXERCISES, "kl_divergence", dataclasses.replace(exercise, trial=graph_only))
    in_numpy = lambda m, lv: 0.5 * np.sum(np.exp(lv) + m**2 - 1 - lv, axis=1)  # noqa: E731 (passes the check)
    assert check("kl_divergence", in_numpy) is True
    capsys.readouterr()
    assert exercises.use("kl_divergence", in_numpy) is exercise.reference
    out = capsys.readouterr().out
    assert out.startswith("Using the package's: yours passes its check but cannot run inside the model (TypeError: "
                          "Cannot convert"), out
    assert "keras.ops" in out
    with pytest.raises(KeyError, match="no exercise called 'kl'"):
        exercises.use("kl", in_numpy)


def test_check_and_use_leave_the_notebooks_random_state_as_it_was(capsys):
    """A lesson draws the same weights and noise after a check or a use as without it (lesson 3's training step
    builds its model after them)."""
    import random

    keras.utils.set_random_seed(0)
    expected = (random.random(), np.random.random(), float(keras.random.uniform(())),
                keras.layers.Dense(3, name="probe").build((None, 2)) or 0)
    keras.utils.set_random_seed(0)
    check("vqvae_forward", pasted("vqvae_forward"))  # builds tiny networks: draws weights
    exercises.use("vqvae_forward", pasted("vqvae_forward"))  # trains a small model for one step
    assert (random.random(), np.random.random(), float(keras.random.uniform(())), 0) == expected
    capsys.readouterr()


# -- questions: a value the learner commits to, judged against what the run measured ------------------------------
def _toy_question(monkeypatch):
    def judge(answer, measured):
        guess = core.as_number(answer, "0.5")
        if abs(guess - measured) > 0.1:
            raise core.Wrong(f"measured {measured:.2f}, you said {guess:.2f}")
        return f"measured {measured:.2f}"

    monkeypatch.setattr(core, "_QUESTIONS", dict(core._QUESTIONS))
    return core.register_question("toy_share", kind="predict", lesson=9, judge=judge,
                                  hints="Think about it.\n\nCount them.", example=0.5)


def test_check_answer_judges_a_value_against_the_measurement(capsys, monkeypatch):
    _toy_question(monkeypatch)
    assert exercises.check_answer("toy_share", 0.45, measured=0.5) is True
    assert capsys.readouterr().out.strip() == "Correct: measured 0.50"
    assert exercises.check_answer("toy_share", 0.9, measured=0.5) is False
    assert "Incorrect: measured 0.50, you said 0.90" in capsys.readouterr().out
    for unanswered in (None, ...):
        assert exercises.check_answer("toy_share", unanswered, measured=0.5) is None
        assert "Not attempted: write your answer in the cell before the run" in capsys.readouterr().out
    for odd in ("0.5", float("nan"), True, [0.5]):
        assert exercises.check_answer("toy_share", odd, measured=0.5) is False
        assert "write your answer as a number, e.g. 0.5" in capsys.readouterr().out


def test_a_question_has_hints_but_no_solution_and_is_not_checked_as_a_function(capsys, monkeypatch):
    _toy_question(monkeypatch)
    assert hint("toy_share") == "Think about it."
    assert "Commit to your best answer" in hint("toy_share", 3)
    capsys.readouterr()
    assert exercises.check_answer("vq_losses", 0.5, measured=0.5) is None
    assert "is answered with a function" in capsys.readouterr().out
    assert check("toy_share", lambda: 0) is None
    assert "there is no exercise called 'toy_share'" in capsys.readouterr().out
    assert exercises.kinds()["toy_share"] == (9, "predict")


def test_a_judge_that_fails_is_not_blamed_on_the_learner(capsys, monkeypatch):
    monkeypatch.setattr(core, "_QUESTIONS", dict(core._QUESTIONS))
    core.register_question("toy_broken", kind="decide", lesson=9, judge=lambda answer, measured: 1 / 0,
                           hints="a\n\nb", example=None)
    assert exercises.check_answer("toy_broken", 3, measured=None) is None
    assert "Not checked: the judge failed (a bug in vqvae_lessons" in capsys.readouterr().out


@pytest.mark.parametrize("kind", ["guess", "transcribe"])
def test_a_question_of_an_unknown_kind_is_refused(kind):
    with pytest.raises(ValueError, match="kind must be one of"):
        core.register_question("toy_kind", kind=kind, lesson=9, judge=None, hints="a\n\nb", example=None)


@pytest.mark.parametrize("name", exercises.questions())
def test_every_question_treats_a_missing_or_odd_answer_kindly(capsys, name):
    assert exercises.check_answer(name, None, measured=None) is None
    assert "Not attempted" in capsys.readouterr().out
    assert exercises.check_answer(name, "a word", measured=exercises._QUESTIONS[name].example) is False
    assert "Incorrect" in capsys.readouterr().out


def test_every_lesson_asks_something_besides_transcribing():
    """#28: each lesson has at least one exercise of another kind than transcription (derive, debug, predict or
    decide), checked."""
    other = {lesson for lesson, kind in exercises.kinds().values() if kind != "transcribe"}
    assert other >= set(range(1, 9)), f"lessons with only transcription exercises: {sorted(set(range(1, 9)) - other)}"
