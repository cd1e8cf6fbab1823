"""The ONNX export of a VQ-VAE's decoder (vqvae_lessons.export) and ``python -m vqvae_lessons export-onnx``.

The exported decoder must give what Keras gives within ``export.TOLERANCE`` (1e-4 on pixels in [0, 1]),
run by onnxruntime, on the shipped default VQ-VAE's maps: digits' own, single codes, random ones. The
export goes through Keras's ``model.export(format="onnx")`` (tf2onnx), so these tests run on the TensorFlow
backend and skip where onnx, tf2onnx or onnxruntime are not installed."""

import base64
import gzip
import json

import keras
import numpy as np
import pytest
from command_line import run

from vqvae_lessons import export, pretrained

pytest.importorskip("onnx")
pytest.importorskip("tf2onnx")
pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="the ONNX export converts the TensorFlow graph (tf2onnx)")


@pytest.fixture(scope="module")
def default():
    return pretrained.load(export.DEFAULT_MODEL)


def test_the_keras_decoder_model_is_vqvae_decode(default):
    maps = np.random.default_rng(1).integers(0, 128, (5, 7, 7)).astype("int32")
    ours = keras.ops.convert_to_numpy(export.decoder_model(default)(maps))
    np.testing.assert_allclose(ours, default.decode(maps), atol=1e-6)


def test_onnx_decoder_matches_keras(default, tmp_path):
    path = export.export_decoder(default, tmp_path / "decoder.onnx")
    rng = np.random.default_rng(2)
    maps = np.concatenate([rng.integers(0, 128, (16, 7, 7)),
                           np.repeat(np.arange(128), 49).reshape(128, 7, 7)]).astype("int32")
    difference = export.onnx_difference(default, path, maps)
    assert difference < export.TOLERANCE, difference
    assert export.onnx_difference(default, path, maps[:1]) < export.TOLERANCE  # any batch size


def test_export_live_writes_the_decoder_and_the_editors_data(default, tiny_mnist, tmp_path):
    summary = export.export_live(default, tmp_path, tiny_mnist.x_test, tiny_mnist.y_test)
    assert summary["onnx_max_difference"] < export.TOLERANCE
    assert set(summary["files"]) == {"decoder.onnx", "codes.json"}
    data = json.loads((tmp_path / "codes.json").read_text())
    labels = sorted(set(tiny_mnist.y_test.tolist()))
    assert [d["label"] for d in data["digits"]] == labels
    codes = default.encode(tiny_mnist.x_test)
    for digit in data["digits"]:
        assert tiny_mnist.y_test[digit["test_index"]] == digit["label"]
        assert digit["codes"] == codes[digit["test_index"]].ravel().tolist()
    assert sorted(data["codes_by_usage"]) == list(range(128))
    assert sum(data["usage"]) == codes.size and data["blank_code"] == data["codes_by_usage"][0]
    images = np.frombuffer(base64.b64decode(data["code_images"]), "uint8").reshape(128, 28, 28)
    filled = default.decode(np.full((1, 7, 7), 5, "int32"))[0, ..., 0]
    np.testing.assert_allclose(images[5] / 255, filled, atol=0.5 / 255 + 1e-6)


def test_a_residual_vq_is_refused():
    from vqvae_lessons.vqvae import VQVAE

    with pytest.raises(ValueError, match="residual VQ"):
        export.decoder_model(VQVAE(architecture="keras-example", quantizer="rvq", num_quantizers=2))


def test_copy_runtime_gzips_the_binary(tmp_path):
    dist = tmp_path / "node_modules" / "onnxruntime-web" / "dist"
    dist.mkdir(parents=True)
    (dist.parent / "package.json").write_text('{"version": "9.9.9"}')
    with pytest.raises(ValueError, match="lacks"):
        export.copy_runtime(dist, tmp_path / "out")
    for name in export.RUNTIME_FILES:
        (dist / name).write_text(f"// {name}")
    (dist / export.RUNTIME_WASM).write_bytes(b"\0asm" + bytes(range(256)) * 10)
    result = export.copy_runtime(dist, tmp_path / "out")
    assert result["onnxruntime_web"] == "9.9.9"
    packed = tmp_path / "out" / "ort" / f"{export.RUNTIME_WASM}.gz"
    assert gzip.decompress(packed.read_bytes()) == (dist / export.RUNTIME_WASM).read_bytes()
    assert set(result["files"]) == {*export.RUNTIME_FILES, f"{export.RUNTIME_WASM}.gz"}


def test_the_command_line_exports(synthetic_npz, tmp_path):
    result = run("export-onnx", "--out", tmp_path / "live", env={"VQVAE_LESSONS_MNIST": str(synthetic_npz)})
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["model"] == export.DEFAULT_MODEL and printed["onnx_max_difference"] < export.TOLERANCE
    assert (tmp_path / "live" / "decoder.onnx").stat().st_size == printed["files"]["decoder.onnx"]
    bad = run("export-onnx", "--out", tmp_path / "x", "--runtime", tmp_path / "nowhere",
              env={"VQVAE_LESSONS_MNIST": str(synthetic_npz)})
    assert bad.returncode == 2 and "lacks" in bad.stderr


def test_half_weights_stores_large_initializers_as_float16(tmp_path):
    import onnx
    import onnxruntime
    from onnx import TensorProto, helper, numpy_helper

    big = np.random.default_rng(3).normal(size=(64, 32)).astype("float32")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "big"], ["y"]), helper.make_node("Add", ["y", "small"], ["z"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 32])],
        [numpy_helper.from_array(big, "big"), numpy_helper.from_array(np.ones(32, "float32"), "small")])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    assert export.half_weights(path, min_size=4096) == 0  # big holds 2048 values
    assert export.half_weights(path, min_size=100) == 1
    stored = {i.name: i.data_type for i in onnx.load(path).graph.initializer}
    assert stored == {"big__float16": TensorProto.FLOAT16, "small": TensorProto.FLOAT}
    x = np.random.default_rng(4).normal(size=(1, 64)).astype("float32")
    out = onnxruntime.InferenceSession(str(path)).run(None, {"x": x})[0]
    np.testing.assert_allclose(out, x @ big.astype("float16").astype("float32") + 1, rtol=1e-5, atol=1e-5)


@pytest.mark.slow  # about 10 s: tf2onnx converts the 2.8 M-parameter gated prior
def test_the_prior_exports_within_tolerance_of_its_float16_weights(tmp_path):
    prior = pretrained.load(export.DEFAULT_PRIOR)
    summary = export.export_live_prior(prior, tmp_path)
    differences = summary["differences"]
    assert differences["logits_vs_float16_weights"] < export.TOLERANCE
    assert differences["probabilities_vs_original"] < 0.01  # float16 weights: about 7e-4 measured
    assert summary["files"]["prior.onnx"] < 4_000_000  # float32 weights: 6.7 MB
    data = json.loads((tmp_path / "prior.json").read_text())
    assert data["vqvae"] == export.DEFAULT_MODEL and data["num_codes"] == 128


def test_the_command_line_refuses_a_prior_of_another_vqvae(synthetic_npz, tmp_path):
    result = run("export-onnx", "--out", tmp_path, "--prior", "gated-keras-example",
                 env={"VQVAE_LESSONS_MNIST": str(synthetic_npz)})
    assert result.returncode == 2 and "must be a prior over the codes of vqvae-k128-d16" in result.stderr


def test_the_sweeps_decoders_export_with_their_codes(tiny_mnist, tmp_path):
    from vqvae_lessons import sweep

    index = sweep.load_sweep()
    index["points"] = [p for p in index["points"] if p["name"] in ("k8-d16", "k128-d2", "k128-d16-loss")]
    summary = export.export_live_sweep(tmp_path, tiny_mnist.x_test[:3], index=index)
    assert summary["points"] == 2 and summary["onnx_max_difference"] < export.TOLERANCE  # grid points only
    data = json.loads((tmp_path / "sweep.json").read_text())
    assert data["base"] == [128, 16] and [p["name"] for p in data["points"]] == ["k8-d16", "k128-d2"]
    model = sweep.load_point(8, 16)
    assert data["points"][0]["codes"] == model.encode(tiny_mnist.x_test[:3]).ravel().tolist()
    assert data["points"][0]["rate_bits"] == 147.0 and (tmp_path / "sweep" / "k8-d16.onnx").is_file()
    images = np.frombuffer(base64.b64decode(data["images"]), "uint8").reshape(3, 28, 28)
    np.testing.assert_allclose(images / 255, tiny_mnist.x_test[:3].reshape(3, 28, 28), atol=0.5 / 255 + 1e-6)
