"""No lesson types a shipped model's figure into its prose (issue #27: every sentence true).

A figure that comes from a shipped model card (``vqvae_lessons/weights/**/*.json``: PSNR,
perplexity, codes used, negative log-likelihood in bits or nats, training images, epochs,
parameter counts, accuracy, inception score, Fréchet distance) goes stale the day the model is
retrained, so a lesson prints it from code (``pretrained.card(name)``, the model, the data) and
never types it into Markdown. This test reads the lessons' Markdown cells (the notebooks' JSON:
no kernel, no TensorFlow) and ``book/intro.md`` and flags every number written next to the
keyword of such a quantity (``27.97 dB``, ``186.8 bits per image``, ``30 epochs``, ``trained on
55,000`` ...), and says whether it still matches a card or is already stale (``RULES`` below: for
counts, such as epochs, only a number that a card holds is flagged, so that a demonstration fit's
"2 epochs on 10,000 training digits" passes).

Definitional constants are not figures of a model and pass: the 49 positions of a 7x7 map, the
codebook sizes, the capacity ``log2 K`` bits per code and ``49 log2 K`` bits per image (343 for
K = 128), the bounds of a score (an inception score of 1 to 10), MNIST's 60,000 training and
10,000 test images. They are listed, with the reason, in ``DEFINITIONAL`` below; keep that list
short. Code (fenced blocks, inline code, and so the folded solutions) is not prose and is not
read, nor are numbers written in words ("three epochs").
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"
WEIGHTS = ROOT / "vqvae_lessons" / "weights"
LESSONS = sorted(BOOK.glob("0*.ipynb"))

# A number as prose writes it: 27.97, 1,000, 0.5; "million" after it scales it.
NUMBER = r"(?<![\w.,/^_{])(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)(?:\s*(million|thousand))?(?![\w^_])"
SPACE = r"[\s$~≈]*"  # spaces, and the $ of inline math around a number
# The rules: (quantity, pattern, which numbers it flags, the definitional constants it lets pass).
# Which numbers: "any" (every number: these quantities are always a measurement), "decimals" (a number
# with decimals, or one that a card holds: an integer is most often a capacity or a rule of thumb),
# "card" (only a number that a card holds for that quantity, at least MIN_CARD_COUNT: the count of a
# demonstration fit, "2 epochs on 10,000 training digits", is the lesson's own setting, in its code),
# "shipped" (at least 20,000, after "trained on": said of the shipped models' training set, which a card
# records; MNIST's 60,000 is no exception there, since the shipped models were trained on 55,000).
MIN_CARD_COUNT = 5  # epochs and image counts below it are demonstration fits' (the judge's 4 epochs and the
# quantizers' 3 are therefore not checked here)
_LOG2 = {float(k) for k in range(1, 11)}  # log2 K bits per code for K = 2 ... 1,024: the capacity of one code
DEFINITIONAL = {
    # the capacity: log2 K bits per code, 49 log2 K bits per image (343 for K = 128); 1 nat = 1 / ln 2 = 1.44
    # bits; ln K nats for K = 2 ... 4,096; lesson 7's FSQ level sets (8, 5, 5, 5) and (7, 5, 5, 5, 5): log2 1,000
    # = 9.97 and log2 4,375 = 12.1 bits
    "negative log-likelihood": _LOG2 | {49 * c for c in _LOG2} | {1.44, 9.97, 12.1}
    | {round(math.log(2 ** k), 2) for k in range(1, 13)},
    # decibels: +3 dB halves the squared error, +10 dB divides it by ten, +6 and +20 halve and divide by ten the
    # error itself
    "PSNR": {3.0, 6.0, 10.0, 20.0},
    # MNIST's own split (60,000 training images, of which the last 5,000 are the validation split)
    "training images": {60_000.0, 5_000.0},
    "inception score": {1.0, 10.0},  # its bounds with ten classes
    "Fréchet distance": {0.0},  # d_F^2 of identical Gaussians
    "percentage": {95.0, 100.0},  # a confidence level; all of something
    "perplexity": {1.0},  # one code used
}
RULES = [
    ("PSNR", NUMBER + SPACE + r"dB\b", "any"),
    ("negative log-likelihood", NUMBER + SPACE + r"(?:bits?|nats?)\b", "decimals"),
    ("parameter count", NUMBER + SPACE + r"(?:trainable\s+)?(?:parameters|weights)\b", "any"),
    ("epochs", NUMBER + SPACE + r"epochs?\b", "card"),
    ("epochs", r"\bepochs?\s+(?:of\s+)?" + NUMBER, "card"),
    ("training images", r"\btrained\s+(?:[\w,]+\s+){0,4}?on\s+(?:all\s+)?(?:the\s+|its\s+)?"
                        r"(?:first\s+|last\s+)?" + NUMBER, "shipped"),
    ("training images", NUMBER + SPACE + r"(?:training|train)\s+(?:images|digits|maps|examples)\b", "card"),
    ("percentage", NUMBER + SPACE + r"%\s*(?:of\b|(?:test\s+)?accuracy\b|(?:codebook\s+)?usage\b)", "decimals"),
    ("percentage", r"\baccuracy\s+(?:of\s+|is\s+|=\s*)?" + NUMBER + SPACE + "%", "any"),
    ("perplexity", r"\bperplexity\s+(?:of\s+|is\s+|=\s*|near\s+|about\s+|around\s+|reaches\s+)*" + NUMBER, "any"),
    ("perplexity", NUMBER + SPACE + r"perplexity\b", "any"),
    ("codes used", NUMBER + SPACE + r"(?:of\s+(?:the|its)\s+\d+\s+)?(?:codes|entries)\s+(?:are\s+)?"
                                    r"(?:used|in\s+use|alive)\b", "any"),
    ("codes used", r"\buses\s+(?:only\s+|all\s+)?" + NUMBER + SPACE + r"(?:of\s+(?:the|its)\s+\d+\s+)?"
                                                               r"(?:codes|entries)\b", "any"),
    ("codes used", NUMBER + SPACE + r"dead\s+codes\b", "any"),
    ("inception score", r"\binception\s+score\s+(?:of\s+|is\s+|=\s*|near\s+|about\s+)*" + NUMBER, "any"),
    ("Fréchet distance", r"(?:Fréchet\s+distance|d_F\^2|d_F²|\bFID)\s*(?:\$\s*)?(?:of\s+|is\s+|=\s*|near\s+|"
                         r"about\s+)*" + NUMBER, "any"),
]


@dataclass(frozen=True)
class Finding:
    where: str
    quantity: str
    number: str
    value: float
    context: str
    cards: tuple  # the cards that hold this value for this quantity (empty: stale, or no card has it)

    def __str__(self):
        verdict = (f"matches {', '.join(self.cards)}: print it from the card instead" if self.cards
                   else "no shipped card has this value: stale, or not a card's figure")
        return f"{self.where}: {self.quantity} {self.number!r} typed in prose ({verdict}): ...{self.context}..."


def _value(number, scale):
    value = float(number.replace(",", ""))
    return value * {"million": 1e6, "thousand": 1e3}.get(scale or "", 1)


def _decimals(number):
    return len(number.split(".")[1]) if "." in number else 0


def _card_values():
    """``{quantity: [(card name, value)]}`` of every shipped card (``weights/**/*.json``)."""
    found = {}

    def add(quantity, name, value):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            found.setdefault(quantity, []).append((name, float(value)))

    for path in sorted(WEIGHTS.rglob("*.json")):
        card = json.loads(path.read_text())
        if not isinstance(card, dict) or "metrics" not in card:
            continue
        name, metrics, training = card.get("name", path.stem), card["metrics"], card.get("training", {})
        add("PSNR", name, metrics.get("test_psnr_db"))
        for key, value in metrics.items():
            if "bits" in key or "nats" in key or "elbo" in key or "kl" in key:
                add("negative log-likelihood", name, value)
                if "bits_per_code" in key:
                    add("negative log-likelihood", name, 49 * value)
            if key.endswith("nats") or key.endswith("nats_per_code"):
                add("negative log-likelihood", name, value / math.log(2))
        add("perplexity", name, metrics.get("test_perplexity"))
        add("codes used", name, metrics.get("codes_used"))
        if metrics.get("codes_used") is not None and card.get("config", {}).get("num_embeddings"):
            add("codes used", name, card["config"]["num_embeddings"] - metrics["codes_used"])
        add("percentage", name, 100 * metrics.get("codebook_usage", math.nan))
        add("percentage", name, 100 * metrics.get("test_accuracy", math.nan))
        add("inception score", name, metrics.get("real_1000_inception_score"))
        add("Fréchet distance", name, metrics.get("real_1000_frechet_distance"))
        add("epochs", name, training.get("epochs"))
        add("training images", name, training.get("train_size"))
    return found


CARD_VALUES = _card_values()


def _matching_cards(quantity, number, value):
    """The cards whose figure for ``quantity``, rounded as ``number`` is written, is ``value``."""
    decimals = _decimals(number)
    tolerance = 0.5 * 10 ** -decimals + 1e-9
    return tuple(sorted({name for name, card_value in CARD_VALUES.get(quantity, [])
                         if abs(card_value - value) <= tolerance}))


def prose(markdown):
    """The prose of a Markdown text: fenced code blocks, inline code, links' targets and HTML
    tags removed (what a reader reads as sentences)."""
    text = re.sub(r"```.*?```", " ", markdown, flags=re.S)
    text = re.sub(r"`[^`\n]*`", " ", text)
    text = re.sub(r"\]\([^)]*\)", "]", text)  # [label](url) -> [label]
    text = re.sub(r"<[^>\n]+>", " ", text)
    return text


def _definitional(quantity, number, value):
    decimals = _decimals(number)
    return any(abs(value - allowed) <= max(0.5 * 10 ** -decimals, 1e-6) if decimals else value == allowed
               for allowed in DEFINITIONAL.get(quantity, ()))


def card_figures(markdown, where="text"):
    """Every number in the prose of ``markdown`` written next to the keyword of a quantity that a
    model card records, as its rule flags it, and not a definitional constant: a list of :class:`Finding`."""
    text = prose(markdown)
    findings, seen = [], set()
    for quantity, pattern, flags in RULES:
        for match in re.finditer(pattern, text, flags=re.I):
            number, scale = match.group(1), match.group(2)
            value = _value(number, scale)
            cards = _matching_cards(quantity, number, value)
            if (flags != "shipped" and _definitional(quantity, number, value)) or (quantity, match.start(1)) in seen:
                continue
            if flags == "decimals" and not ("." in number or cards):
                continue
            if flags == "card" and not (cards and value >= MIN_CARD_COUNT):
                continue
            if flags == "shipped" and value < 20_000:
                continue
            seen.add((quantity, match.start(1)))
            context = " ".join(text[max(0, match.start() - 50):match.end() + 20].split())
            findings.append(Finding(where, quantity, number + (f" {scale}" if scale else ""), value, context, cards))
    return findings


def notebook_findings(notebook, name="notebook"):
    """:func:`card_figures` of every Markdown cell of a notebook (a dict as in the ``.ipynb`` JSON)."""
    findings = []
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] == "markdown":
            findings += card_figures("".join(cell["source"]), where=f"{name}, cell {index}")
    return findings


def stale(findings):
    """The findings whose number no shipped card holds for that quantity."""
    return [finding for finding in findings if not finding.cards]


# -- the checker itself ---------------------------------------------------------------------------
def _synthetic(*markdown):
    return {"cells": [{"cell_type": "markdown", "metadata": {}, "source": text.splitlines(keepends=True)}
                      for text in markdown] + [{"cell_type": "code", "metadata": {}, "outputs": [],
                                                "source": ["print('27.50 dB')  # code is not prose\n"]}]}


def test_a_planted_stale_figure_fails_and_says_it_is_stale():
    card = json.loads((WEIGHTS / "vqvae-k128-d16.json").read_text())
    assert f"{card['metrics']['test_psnr_db']:.2f}" != "27.50"  # the planted figure is not the card's
    notebook = _synthetic("# A lesson\n\nThe default VQ-VAE reaches 27.50 dB test PSNR on the test digits.\n")
    findings = notebook_findings(notebook, "planted")
    assert [(f.quantity, f.number, f.where) for f in findings] == [("PSNR", "27.50", "planted, cell 0")]
    assert stale(findings) == findings and "stale" in str(findings[0])


def test_a_figure_that_matches_its_card_is_flagged_too_but_not_as_stale():
    card = json.loads((WEIGHTS / "vqvae-k128-d16.json").read_text())
    psnr, epochs = card["metrics"]["test_psnr_db"], card["training"]["epochs"]
    findings = card_figures(f"It reaches {psnr:.2f} dB after {epochs} epochs, trained on the first "
                            f"{card['training']['train_size']:,} training images.")
    assert {f.quantity for f in findings} == {"PSNR", "epochs", "training images"}
    assert all("vqvae-k128-d16" in f.cards for f in findings) and not stale(findings)


@pytest.mark.parametrize("text, quantity", [
    ("a test NLL of 186.8 bits per image", "negative log-likelihood"),
    ("2.64 nats per code", "negative log-likelihood"),
    ("the prior has 0.9 million parameters", "parameter count"),
    ("the judge reads 99.1% of the test digits right", "percentage"),
    ("a test accuracy of 99.1%", "percentage"),
    ("its perplexity is 82.2", "perplexity"),
    ("it uses only 64 of its 128 codes", "codes used"),
    ("an inception score of 9.73", "inception score"),
    ("a squared Fréchet distance of 6.66", "Fréchet distance"),
    ("$d_F^2 = 6.66$", "Fréchet distance"),
    ("The judge was trained on the 60,000 training digits", "training images"),
    ("a VAE trained for 30 epochs on all 60,000 training images", "training images"),
    ("lesson 1's rate, 9.5 bits for vae-z2", "negative log-likelihood"),
])
def test_each_quantity_is_recognised(text, quantity):
    assert quantity in {f.quantity for f in card_figures(text)}, card_figures(text)


def test_definitional_constants_code_and_links_pass():
    text = """A 7x7 map holds 49 positions of K = 128 codes with 16 dimensions each: at most 343 bits per image
    ($49 \\log_2 128$), 7 bits per code; images of 28x28 pixels. MNIST has 60,000 training and 10,000 test
    images. The inception score runs from 1 to 10, and $d_F^2$ is 0 for identical Gaussians. Run
    `train vqvae --epochs 30` or see [the card](weights/vqvae-k128-d16.md#27.97-dB).

    ```python
    print("27.97 dB, 30 epochs")
    ```
    """
    assert card_figures(text) == []


# -- the lessons ------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", [*LESSONS, BOOK / "intro.md"], ids=lambda path: path.stem)
def test_no_lesson_types_a_card_figure_into_its_prose(path):
    if path.suffix == ".md":
        findings = card_figures(path.read_text(), where=path.name)
    else:
        findings = notebook_findings(json.loads(path.read_text()), path.name)
    assert not findings, "print these from the card instead:\n" + "\n".join(map(str, findings))
