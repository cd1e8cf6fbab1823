"""What the exercise tests share: check()'s verdict and what it printed, and the assertion that a
mistake is rejected with the hint that names it."""

from vqvae_lessons.exercises import check


def verdict(capsys, name, fn):
    """check()'s return value and what it printed."""
    result = check(name, fn)
    return result, capsys.readouterr().out


def assert_incorrect(capsys, name, fn, *phrases):
    """``fn`` is judged Incorrect, and the message holds every one of ``phrases``; returns the message."""
    result, out = verdict(capsys, name, fn)
    assert result is False, out
    assert out.startswith("Incorrect:"), out
    for phrase in phrases:
        assert phrase in out, f"{phrase!r} not in: {out}"
    return out
