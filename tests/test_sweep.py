"""Lesson 4's sweep: the shipped results are complete and consistent, they load and reproduce, the command
line runs a sweep and writes readable results, and bad inputs give errors that name the problem and the fix."""

import json
import math
import shlex
import shutil

import numpy as np
import pytest
from command_line import run  # tests/command_line.py
from matplotlib.figure import Figure

from vqvae_lessons import metrics, plotting, sweep
from vqvae_lessons.cli import build_parser
from vqvae_lessons.data import MNIST_ENV
from vqvae_lessons.sweep import SweepError


@pytest.fixture(scope="module")
def shipped():
    return sweep.load_sweep()


# -- the shipped results ---------------------------------------------------------------------------------
def test_shipped_sweep_holds_every_grid_point_and_ablation(shipped):
    assert shipped["complete"] is True
    names = [r["name"] for r in shipped["points"]]
    assert len(names) == len(set(names))
    expected = {p.name for p in sweep.plan()}
    assert set(names) == expected
    assert min(shipped["grid"]["num_embeddings"]) <= 8 and max(shipped["grid"]["num_embeddings"]) >= 512
    assert min(shipped["grid"]["embedding_dim"]) <= 2 and max(shipped["grid"]["embedding_dim"]) >= 64
    assert shipped["grid"]["base"] == list(sweep.BASE)
    assert set(shipped["ablations"]) == {sweep.point_name(*sweep.BASE, a) for a in sweep.ABLATIONS}
    assert shipped["command"].startswith("python -m vqvae_lessons sweep")


def test_shipped_points_are_consistent(shipped):
    directory = sweep.SWEEP_DIR
    for record in shipped["points"]:
        k, d = record["num_embeddings"], record["embedding_dim"]
        m = record["metrics"]
        assert record["rate_bits"] == pytest.approx(49 * math.log2(k))
        assert m["bits_per_image"] == pytest.approx(record["rate_bits"])
        assert record["config"]["num_embeddings"] == k and record["config"]["embedding_dim"] == d
        assert 1 <= m["test_perplexity"] <= m["codes_used"] + 1e-9 <= k + 1e-9
        assert m["codebook_usage"] == pytest.approx(m["codes_used"] / k)
        assert m["test_psnr_db"] == pytest.approx(metrics.psnr_db(m["test_mse"]))
        assert record["seconds"] > 0 and record["settings"]["train_size"] > 0
        weights = directory / record["weights"]
        assert weights.is_file() and weights.stat().st_size < 1_000_000  # small enough to ship
        assert weights.read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"
        ablation = record["name"].split("-", 2)[-1] if record["group"] == "ablation" else None
        for key, value in sweep.ABLATIONS.get(ablation, {}).items():
            if key != "label":
                assert record["settings"][key] == value
    readme = (directory / "README.md").read_text()
    assert shipped["command"] in readme and "k128-d16" in readme


def test_every_shipped_point_loads(shipped):
    for record in shipped["points"]:
        ablation = record["name"].split("-", 2)[-1] if record["group"] == "ablation" else None
        model = sweep.load_point(record["num_embeddings"], record["embedding_dim"], ablation, shipped)
        assert (model.num_embeddings, model.embedding_dim) == (record["num_embeddings"], record["embedding_dim"])
        assert model.quantizer_kind == record["settings"]["quantizer"]


@pytest.mark.parametrize("k, d, ablation", [(8, 16, None), (128, 64, None), (128, 16, "loss-no-maintenance")])
def test_shipped_points_reproduce_their_recorded_metrics(real_mnist, shipped, k, d, ablation):
    record = sweep.point(k, d, ablation, shipped)
    measured = metrics.evaluate_vqvae(sweep.load_point(k, d, ablation, shipped), real_mnist.x_test)
    assert measured["test_psnr_db"] == pytest.approx(record["metrics"]["test_psnr_db"], abs=0.1)
    assert measured["codes_used"] == pytest.approx(record["metrics"]["codes_used"], abs=2)


def test_table_and_figures_from_the_shipped_results(shipped, tmp_path):
    rows = sweep.table(shipped)
    assert {r["group"] for r in rows} == {"grid", "ablation"}
    assert len(sweep.table(shipped, group="ablation")) == len(sweep.ABLATIONS)
    k_line, d_line, base_k, base_d = plotting.sweep._sweep_lines(rows)
    assert (base_k, base_d) == sweep.BASE and len(k_line) == 7 and len(d_line) == 6
    images = np.random.default_rng(0).random((3, 28, 28, 1))
    for fig in (plotting.rate_distortion(rows, highlight="k32-d16"), plotting.codebook_use(rows),
                plotting.ablations(sweep.table(shipped, group="ablation")),
                plotting.reconstruction_rows(images, {"a": images[::-1], "b": images}, n=3)):
        assert isinstance(fig, Figure)
        assert fig.get_suptitle() or any(ax.get_title() for ax in fig.axes)
        assert all(ax.get_xlabel() or not ax.get_xticks().size for ax in fig.axes)
        fig.savefig(tmp_path / "figure.png")
        assert (tmp_path / "figure.png").stat().st_size > 1000


# -- the plan ----------------------------------------------------------------------------------------------
def test_plan_crosses_the_two_lines_at_the_base_point():
    points = sweep.plan()
    grid = [(p.num_embeddings, p.embedding_dim) for p in points if p.group == "grid"]
    assert grid == [(k, 16) for k in sweep.GRID_NUM_EMBEDDINGS] + [(128, d) for d in (2, 4, 8, 32, 64)]
    assert [p.name for p in points if p.group == "ablation"] == [f"k128-d16-{a}" for a in sweep.ABLATIONS]
    assert sweep.default_base([8, 16], [4]) == (16, 4)
    tiny = sweep.plan([8, 16], [4], ablations=(), train_size=64)
    assert [p.name for p in tiny] == ["k8-d4", "k16-d4"] and tiny[0].settings["train_size"] == 64
    assert [p.name for p in sweep.plan([8], [2, 4], base=(32, 4), ablations=())] == ["k8-d4", "k32-d2", "k32-d4"]


def test_plan_rejects_bad_settings():
    with pytest.raises(ValueError, match="No ablation is called 'ema-fast'.*choose from"):
        sweep.plan(ablations=["ema-fast"])
    with pytest.raises(ValueError, match="Unknown sweep settings.*'epoch'"):
        sweep.plan(epoch=3)
    with pytest.raises(ValueError, match="K >= 2"):
        sweep.plan([1, 8], [4])


# -- running a sweep --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_sweep(synthetic_npz, tmp_path_factory):
    """A sweep of three tiny models run by the command line, as a learner would run it."""
    out = tmp_path_factory.mktemp("sweep")
    args = ["sweep", "--train-size", "64", "--epochs", "1", "--num-embeddings", "8", "16", "--embedding-dim", "4",
            "--ablations", "loss", "--out", str(out)]
    result = run(*args, env={MNIST_ENV: str(synthetic_npz)})
    assert result.returncode == 0, result.stderr
    return out, result, args


@pytest.mark.slow
def test_cli_runs_a_tiny_sweep_and_writes_readable_results(tiny_sweep):
    out, result, args = tiny_sweep
    summary = json.loads(result.stdout)  # stdout holds the JSON result only
    assert [p["name"] for p in summary["points"]] == ["k8-d4", "k16-d4", "k16-d4-loss"]
    assert "[3/3] k16-d4-loss: PSNR" in result.stderr  # progress on stderr
    index = sweep.load_sweep(out)
    assert index["complete"] and index["settings"]["train_size"] == 64 and index["settings"]["epochs"] == 1
    words = shlex.split(index["command"])  # the recorded command reruns the same sweep
    assert words[:4] == ["python", "-m", "vqvae_lessons", "sweep"]
    assert vars(build_parser().parse_args(words[3:])) == vars(build_parser().parse_args(args))
    for p in summary["points"]:
        record = sweep.point(index=index, **({"ablation": "loss"} if p["name"].endswith("loss") else
                                             {"num_embeddings": p["K"], "embedding_dim": p["D"]}))
        assert record["metrics"]["test_psnr_db"] == pytest.approx(p["test_psnr_db"], abs=1e-3)
        assert p["rate_bits"] == pytest.approx(49 * math.log2(p["K"]))
    model = sweep.load_point(16, 4, "loss", index)
    assert model.quantizer_kind == "loss" and model.num_embeddings == 16
    assert (out / "README.md").read_text().startswith("# Lesson 4's sweep")


@pytest.mark.slow
def test_resume_keeps_finished_points(tiny_sweep, synthetic_npz, tmp_path):
    out, _, args = tiny_sweep
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "k16-d4.weights.h5").unlink()
    result = run(*args[:-1], str(copy), "--resume", env={MNIST_ENV: str(synthetic_npz)})
    assert result.returncode == 0, result.stderr
    assert "[1/3] k8-d4: kept from the previous run" in result.stderr
    assert "[2/3] k16-d4: PSNR" in result.stderr and (copy / "k16-d4.weights.h5").is_file()


def test_cli_help_and_bad_flags():
    result = run("sweep", "--help")
    assert result.returncode == 0 and "--num-embeddings" in result.stdout and "--ablations" in result.stdout
    result = run("sweep", "--ablations", "fastest")
    assert result.returncode == 2 and "invalid choice: 'fastest'" in result.stderr
    result = run("sweep", "--num-embeddings", "0")
    assert result.returncode == 2 and "must be a positive integer" in result.stderr


# -- errors that say what is wrong and how to fix it ---------------------------------------------------
def test_unknown_point_lists_the_points_there_are(shipped):
    with pytest.raises(SweepError, match=r"no point 'k32-d4'.*\(8, 16\).*varies K at the base D") as error:
        sweep.point(32, 4, index=shipped)
    assert "python -m vqvae_lessons train vqvae" in str(error.value)
    with pytest.raises(SweepError, match="ablations: .*loss"):
        sweep.point(ablation="no-such-thing", index=shipped)
    with pytest.raises(SweepError, match=r"point\(K, D\)"):
        sweep.point(128)


@pytest.mark.slow
def test_missing_or_corrupt_files(tiny_sweep, tmp_path):
    out, _, _ = tiny_sweep
    with pytest.raises(SweepError, match=r"index .*sweep.json is missing.*python -m vqvae_lessons sweep --out"):
        sweep.load_sweep(tmp_path / "nowhere")
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    (broken / "sweep.json").write_text("{not json")
    with pytest.raises(SweepError, match="not readable JSON.*Reinstall the package"):
        sweep.load_sweep(broken)
    (broken / "sweep.json").write_text("[1, 2]")
    with pytest.raises(SweepError, match="no list of points"):
        sweep.load_sweep(broken)
    shutil.copy(out / "sweep.json", broken / "sweep.json")
    index = sweep.load_sweep(broken)
    (broken / "k8-d4.weights.h5").unlink()
    with pytest.raises(SweepError, match=r"k8-d4.weights.h5 of the sweep's point 'k8-d4' is missing"):
        sweep.load_point(8, 4, index=index)
    (broken / "k16-d4.weights.h5").write_bytes(b"version https://git-lfs.github.com/spec/v1\n")
    with pytest.raises(SweepError, match="not an HDF5 file.*Git LFS"):
        sweep.load_point(16, 4, index=index)
    data = (out / "k16-d4-loss.weights.h5").read_bytes()
    (broken / "k16-d4-loss.weights.h5").write_bytes(data[: len(data) // 3])
    with pytest.raises(SweepError, match="does not fit the model sweep.json describes"):
        sweep.load_point(16, 4, "loss", index)


@pytest.mark.slow
def test_sweep_errors_are_clear_on_the_command_line(tmp_path):
    result = run("sweep", "--out", str(tmp_path), "--train-size", "8", env={MNIST_ENV: str(tmp_path / "no.npz")})
    assert result.returncode == 2 and "does not exist" in result.stderr and "Traceback" not in result.stderr
