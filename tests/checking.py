"""What the exercise tests share: check()'s verdict and what it printed, and the assertion that a
mistake is rejected with the hint that names it."""

from vqvae_lessons import exercises
from vqvae_lessons.exercises import check


def pasted(name):
    """Exercise ``name``'s folded solution as a learner pastes it into their notebook: its source run in a fresh
    namespace (the reference module's imports, not the package's objects), so that ``check`` sees a function
    of the learner's, not the package's own."""
    reference = exercises._EXERCISES[name].reference
    namespace = {**reference.__globals__, "__name__": "__main__"}
    exec(compile(exercises.solution_source(name), f"<pasted solution of {name}>", "exec"), namespace)
    return namespace[name]


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


def assert_reference_stub_and_crash(capsys, name, reference):
    """The pasted reference is Correct, the package's own is Not attempted (it is not the learner's), the
    notebook's stub is Not attempted, and an answer that raises is Incorrect with its error named."""
    assert check(name, pasted(name)) is True
    assert check(name, reference) is None
    assert check(name, _stub) is None
    assert check(name, lambda *_: 1 / 0) is False
    assert "ZeroDivisionError" in capsys.readouterr().out


def assert_every_mistake_named(capsys, name, mistakes):
    """Each ``(mistaken answer, its hint)`` of an exercise's mistakes table is Incorrect with that hint."""
    for mistake, mistake_hint in mistakes:
        assert_incorrect(capsys, name, mistake, mistake_hint)


def assert_titled_figure(fig, tmp_path):
    """``fig`` is a matplotlib figure with a title that saves to a non-trivial PNG."""
    from matplotlib.figure import Figure

    assert isinstance(fig, Figure)
    assert fig.get_suptitle() or any(ax.get_title() for ax in fig.axes)
    fig.savefig(tmp_path / "figure.png")
    assert (tmp_path / "figure.png").stat().st_size > 1000


def _stub(*_):
    raise NotImplementedError
