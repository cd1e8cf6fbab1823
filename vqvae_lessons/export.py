"""A VQ-VAE's decoder for the web page: ONNX export, its check, and the files the live figures read.

The online book runs lesson 3's code editor in the reader's browser, with no kernel: the decoder, with the
codebook lookup in front of it, is exported to ONNX and run by onnxruntime-web (its WebAssembly backend). The
same functions export a model you trained, so you can load it into the page:

* :func:`decoder_model`: a Keras model from code indices ``(N, 7, 7)`` (int32) to images ``(N, 28, 28, 1)`` in
  [0, 1], the codebook lookup, the decoder and the clipping of :meth:`~vqvae_lessons.vqvae.VQVAE.decode` in one;
* :func:`export_decoder`: that model written as ONNX with Keras's own ``model.export(path, format="onnx")``
  (which converts with ``tf2onnx``);
* :func:`onnx_difference`: the largest absolute difference between the ONNX file run by ``onnxruntime`` and
  the Keras decoder, on given code maps (the export is checked to stay within :data:`TOLERANCE`);
* :func:`export_live`: ``decoder.onnx`` and ``codes.json`` (a test digit of each class with its code map, each
  code drawn alone, the codes by test-set usage) into a folder, checked on the digits' maps;
* :func:`copy_runtime`: the few files of onnxruntime-web the page needs, from its npm package's ``dist``;
* :func:`export_live_sweep`: lesson 4's explorer: the decoder of every grid point of the shipped K/D sweep
  (:mod:`~vqvae_lessons.sweep`), the codes each gives a few test digits, and the sweep's test metrics;
* :func:`export_prior`, :func:`prior_differences` and :func:`export_live_prior`: the same for lesson 5's sampler,
  a PixelCNN prior from code maps ``(N, 7, 7)`` to logits ``(N, 7, 7, K)``. Keras's ``model.export`` fails on the
  PixelCNN's subclassed layers with this TensorFlow (it traces an inner layer with the wrong input rank), so the
  prior is converted with ``tf2onnx.convert.from_function`` from a ``tf.function`` around its call. Its weights
  are stored as float16 (cast back to float32 when the page loads it: it computes in float32), which halves
  the download (6.7 to 3.3 MB for the shipped gated prior); the file is checked against the same Keras prior
  with its weights rounded to float16 (within :data:`TOLERANCE`) and against the original (reported).

The command line calls them: ``python -m vqvae_lessons export-onnx --out DIR`` (the shipped default
``vqvae-k128-d16``; ``--weights PATH`` for yours; ``--runtime node_modules/onnxruntime-web/dist`` copies the
runtime too). The book's build puts them into ``book/_static/live/generated/``, where
``book/_static/live/vq_live.js`` finds them.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import importlib.metadata
import json
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np

DEFAULT_MODEL = "vqvae-k128-d16"
TOLERANCE = 1e-4  # largest allowed |ONNX - Keras| on a decoded pixel in [0, 1]
DECODER_FILE, DATA_FILE, RUNTIME_DIR = "decoder.onnx", "codes.json", "ort"
PRIOR_FILE, PRIOR_DATA_FILE, DEFAULT_PRIOR = "prior.onnx", "prior.json", "gated-vqvae"
SWEEP_DIR, SWEEP_DATA_FILE = "sweep", "sweep.json"
HALF_MIN_SIZE = 1024  # initializers with at least this many float32 values are stored as float16
# The lesson's own edits: the digit that gives the top rows and the one that gives rows 4 to 6 (lesson 3,
# section 6), and the position whose code it changes.
LESSON_PAIRS = ((0, 7), (9, 2), (4, 1), (7, 5))
LESSON_DIGIT, LESSON_POSITION, SWAP_FROM_ROW = 3, (3, 3), 4
# onnxruntime-web's plain WebAssembly backend (no WebGPU, WebGL or JSEP): its ES module, the glue module it
# imports, and the WebAssembly binary, written gzipped (the page unpacks it with DecompressionStream), so the
# download is about 4 MB on any static host, compressed by the server or not.
RUNTIME_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs")
RUNTIME_WASM = "ort-wasm-simd-threaded.wasm"


def _need(module, package):
    try:
        return __import__(module)
    except ImportError as error:
        raise ImportError(f"The ONNX export needs {package}: pip install {package}") from error


def decoder_model(vqvae):
    """A Keras model: code indices ``(N, 7, 7)`` int32 to images ``(N, 28, 28, 1)`` in [0, 1], as
    ``vqvae.decode`` computes them (codebook lookup, decoder, ``+ 0.5``, clipped), built and called once."""
    import keras
    from keras import ops

    if getattr(vqvae, "quantizer_kind", None) == "rvq":
        raise ValueError("The web export takes one code per position; a residual VQ's maps (N, 7, 7, S) are not "
                         "supported: export a VQ, FSQ or LFQ model.")
    quantizer, decoder = vqvae.quantizer, vqvae.decoder

    class CodebookLookup(keras.layers.Layer):
        def call(self, indices):
            return quantizer.lookup(indices)

    codes = keras.Input((7, 7), dtype="int32", name="codes")
    images = ops.clip(decoder(CodebookLookup(name="codebook_lookup")(codes)) + 0.5, 0.0, 1.0)
    model = keras.Model(codes, images, name="codes_to_images")
    model(np.zeros((1, 7, 7), "int32"))  # Keras exports only a model that has been called
    return model


def export_decoder(vqvae, path):
    """Write ``vqvae``'s :func:`decoder_model` to ``path`` as ONNX (input ``codes``: int32 ``(N, 7, 7)``;
    one output, float32 ``(N, 28, 28, 1)``); returns the path. Needs ``tf2onnx`` and ``onnx``."""
    _need("onnx", "onnx")
    _need("tf2onnx", "tf2onnx")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():  # Keras prints "Saved artifact at ..."
        warnings.filterwarnings("ignore", category=FutureWarning, message=".*np.object.*")  # Keras's tf2onnx shim
        decoder_model(vqvae).export(str(path), format="onnx")
    return path


def onnx_difference(vqvae, path, codes):
    """The largest absolute difference between the ONNX decoder at ``path`` (run by ``onnxruntime`` on the
    CPU) and ``vqvae.decode`` on the code maps ``codes`` ``(N, 7, 7)``."""
    ort = _need("onnxruntime", "onnxruntime")
    codes = np.asarray(codes, "int32")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ours = session.run(None, {session.get_inputs()[0].name: codes})[0]
    return float(np.max(np.abs(ours - vqvae.decode(codes))))


def _first_of_each_class(labels):
    labels = np.asarray(labels)
    return [int(np.flatnonzero(labels == digit)[0]) for digit in range(10) if np.any(labels == digit)]


def export_live(vqvae, out, images, labels, name=DEFAULT_MODEL, tolerance=TOLERANCE):
    """Everything lesson 3's live editor reads, written into the folder ``out``:

    * ``decoder.onnx``: :func:`export_decoder`;
    * ``codes.json``: the first image of each class among ``images`` ``(N, 28, 28[, 1])`` in [0, 1] (the test
      set) with ``labels``: its index and 7x7 code map; every code's image when it fills the whole map; the
      codes ordered by how often they occur in the codes of all ``images``; the lesson's edits.

    The ONNX decoder is checked against Keras on the digits' maps, on the maps of single codes and on random
    maps: a ValueError if any pixel differs by more than ``tolerance``. Returns a summary (files, sizes in
    bytes, the difference)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    k = int(vqvae.num_embeddings)
    all_codes = vqvae.encode(images)
    chosen = _first_of_each_class(labels)
    digit_maps = all_codes[chosen]
    usage = np.bincount(all_codes.ravel(), minlength=k)
    by_usage = np.argsort(-usage, kind="stable")
    single = np.repeat(np.arange(k, dtype="int32"), 49).reshape(k, 7, 7)
    thumbnails = np.round(vqvae.decode(single)[..., 0] * 255).astype("uint8")

    path = export_decoder(vqvae, out / DECODER_FILE)
    random_maps = np.random.default_rng(0).integers(0, k, (32, 7, 7)).astype("int32")
    difference = max(onnx_difference(vqvae, path, maps) for maps in (digit_maps, single, random_maps))
    if difference > tolerance:
        raise ValueError(f"The ONNX decoder differs from Keras by {difference:.3g} > {tolerance:g} on a pixel.")

    data = {
        "model": name,
        "num_embeddings": k,
        "grid": [7, 7],
        "digits": [{"label": int(np.asarray(labels)[i]), "test_index": i, "codes": m.ravel().tolist()}
                   for i, m in zip(chosen, digit_maps, strict=True)],
        "codes_by_usage": by_usage.tolist(),
        "usage": usage.tolist(),
        "blank_code": int(by_usage[0]),
        "code_images": base64.b64encode(thumbnails.tobytes()).decode("ascii"),  # (K, 28, 28) uint8, 255 = ink
        "lesson": {"digit": LESSON_DIGIT, "position": list(LESSON_POSITION), "pairs": [list(p) for p in LESSON_PAIRS],
                   "swap_from_row": SWAP_FROM_ROW},
        "onnx_max_difference": difference,
        "versions": {p: _version(p) for p in ("keras", "tensorflow", "tf2onnx", "onnx", "onnxruntime")},
    }
    (out / DATA_FILE).write_text(json.dumps(data, separators=(",", ":")) + "\n", encoding="utf-8")
    files = {f.name: f.stat().st_size for f in (out / DECODER_FILE, out / DATA_FILE)}
    return {"out": str(out), "model": name, "files": files, "onnx_max_difference": difference,
            "tolerance": tolerance}


def _version(package):
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def copy_runtime(dist, out):
    """Copy onnxruntime-web's plain WebAssembly backend from ``dist`` (``node_modules/onnxruntime-web/dist``)
    into ``out/ort/``, the binary gzipped (:data:`RUNTIME_WASM` ``.gz``); returns the files' sizes in bytes."""
    dist, target = Path(dist), Path(out) / RUNTIME_DIR
    missing = [f for f in (*RUNTIME_FILES, RUNTIME_WASM) if not (dist / f).is_file()]
    if missing:
        raise ValueError(f"{dist} lacks {', '.join(missing)}: is it onnxruntime-web's dist folder (npm ci, then "
                         f"node_modules/onnxruntime-web/dist), version 1.19 or later?")
    target.mkdir(parents=True, exist_ok=True)
    for file in RUNTIME_FILES:
        shutil.copyfile(dist / file, target / file)
    with open(dist / RUNTIME_WASM, "rb") as source, gzip.open(target / f"{RUNTIME_WASM}.gz", "wb", 9) as packed:
        shutil.copyfileobj(source, packed)
    package = dist.parent / "package.json"
    version = json.loads(package.read_text())["version"] if package.is_file() else None
    (target / "VERSION").write_text(f"onnxruntime-web {version}\n")
    return {"onnxruntime_web": version,
            "files": {f.name: f.stat().st_size for f in sorted(target.iterdir()) if f.name != "VERSION"}}


# -- lesson 5's sampler: a PixelCNN prior -------------------------------------------------------------------------


def export_prior(prior, path, float16=True):
    """Write ``prior`` (an unconditional PixelCNN: code maps int32 ``(N, 7, 7)`` to logits ``(N, 7, 7, K)``)
    to ``path`` as ONNX (input ``codes``, one output), its large weights stored as float16 when ``float16``
    (:func:`half_weights`); returns the path. Needs ``tf2onnx`` and ``onnx``."""
    _need("onnx", "onnx")
    tf2onnx = _need("tf2onnx", "tf2onnx")
    import tensorflow as tf

    if getattr(prior, "conditional", False):
        raise ValueError("The web export takes an unconditional prior (its maps alone); this one needs labels.")
    height, width = getattr(prior, "grid", (7, 7))
    signature = [tf.TensorSpec((None, height, width), tf.int32, name="codes")]

    @tf.function(input_signature=signature)
    def logits(codes):
        return prior(codes)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, message=".*np.object.*")
        tf2onnx.convert.from_function(logits, input_signature=signature, opset=17, output_path=str(path))
    if float16:
        half_weights(path)
    return path


def half_weights(path, min_size=HALF_MIN_SIZE):
    """Store the float32 initializers of the ONNX file at ``path`` that hold at least ``min_size`` values as
    float16, each followed by a Cast back to float32 (onnxruntime folds the casts when it loads the model, so
    it computes in float32 with the rounded weights); rewrites the file, returns how many were halved."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    graph, casts, halved = model.graph, [], 0
    for initializer in list(graph.initializer):
        if initializer.data_type != onnx.TensorProto.FLOAT or np.prod(initializer.dims) < min_size:
            continue
        values = numpy_helper.to_array(initializer)
        half = numpy_helper.from_array(values.astype("float16"), name=f"{initializer.name}__float16")
        graph.initializer.remove(initializer)
        graph.initializer.append(half)
        casts.append(helper.make_node("Cast", [half.name], [initializer.name], to=onnx.TensorProto.FLOAT,
                                      name=f"{initializer.name}__cast"))
        halved += 1
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return halved


def rounded_to_float16(model):
    """``model`` with every weight rounded to float16 and back (what :func:`half_weights` stores), in place."""
    model.set_weights([w.astype("float16").astype(w.dtype) if w.dtype == np.float32 and w.size >= HALF_MIN_SIZE
                       else w for w in model.get_weights()])
    return model


def prior_differences(prior, path, codes, rounded=None):
    """How far the ONNX prior at ``path`` lies from Keras on the maps ``codes`` ``(N, 7, 7)``: the largest
    absolute difference of the logits from ``rounded`` (``prior`` with its weights rounded to float16, built
    here unless given) and from ``prior`` itself, and of the probabilities (softmax) from ``prior``."""
    import keras

    ort = _need("onnxruntime", "onnxruntime")
    codes = np.asarray(codes, "int32")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ours = session.run(None, {session.get_inputs()[0].name: codes})[0]
    original = keras.ops.convert_to_numpy(prior(codes))
    if rounded is None:
        rounded = prior.__class__.from_config(prior.get_config())  # a PixelCNN creates its weights when built
        rounded.set_weights(prior.get_weights())
        rounded_to_float16(rounded)
    reference = keras.ops.convert_to_numpy(rounded(codes))

    def softmax(x):
        e = np.exp(x - x.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    return {"logits_vs_float16_weights": float(np.abs(ours - reference).max()),
            "logits_vs_original": float(np.abs(ours - original).max()),
            "probabilities_vs_original": float(np.abs(softmax(ours) - softmax(original)).max())}


def export_live_prior(prior, out, name=DEFAULT_PRIOR, vqvae_name=DEFAULT_MODEL, tolerance=TOLERANCE):
    """Lesson 5's sampler's files in the folder ``out``: ``prior.onnx`` (:func:`export_prior`, float16 weights)
    and ``prior.json`` (the prior's name, its VQ-VAE's, K and the differences of :func:`prior_differences` on
    random maps, which must stay within ``tolerance`` of the float16-rounded Keras prior). The page decodes
    its samples with ``decoder.onnx`` (:func:`export_live`), so the prior must be one over ``vqvae_name``'s
    codes. Returns a summary."""
    out = Path(out)
    path = export_prior(prior, out / PRIOR_FILE)
    k = int(prior.num_codes)
    maps = np.random.default_rng(0).integers(0, k, (16, 7, 7)).astype("int32")
    differences = prior_differences(prior, path, maps)
    if differences["logits_vs_float16_weights"] > tolerance:
        raise ValueError(f"The ONNX prior differs from Keras (float16 weights) by "
                         f"{differences['logits_vs_float16_weights']:.3g} > {tolerance:g} on a logit.")
    data = {"model": name, "vqvae": vqvae_name, "num_codes": k, "grid": [7, 7], "differences": differences,
            "float16_weights": True}
    (out / PRIOR_DATA_FILE).write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return {"model": name, "files": {f.name: f.stat().st_size for f in (path, out / PRIOR_DATA_FILE)},
            "differences": differences, "tolerance": tolerance}


# -- lesson 4's explorer: the K/D sweep ---------------------------------------------------------------------------


def export_live_sweep(out, images, index=None, tolerance=TOLERANCE):
    """Lesson 4's explorer's files in the folder ``out``: ``sweep/NAME.onnx``, the decoder of each grid point
    of the sweep ``index`` (default: the shipped one, :func:`~vqvae_lessons.sweep.load_sweep`), and
    ``sweep.json``: the test ``images`` ``(n, 28, 28[, 1])`` in [0, 1] (uint8, base64), the codes each point
    gives them, and each point's K, D, rate and test metrics. Each decoder is checked against Keras on its
    codes (a ValueError beyond ``tolerance``). Returns a summary."""
    from . import sweep

    index = index if index is not None else sweep.load_sweep()
    out = Path(out)
    images = np.asarray(images, "float32").reshape(-1, 28, 28)
    points, largest, files = [], 0.0, {}
    for record in (r for r in index["points"] if r["group"] == "grid"):
        k, d = record["num_embeddings"], record["embedding_dim"]
        model = sweep.load_point(k, d, index=index)
        codes = model.encode(images)
        path = export_decoder(model, out / SWEEP_DIR / f"{record['name']}.onnx")
        difference = onnx_difference(model, path, codes)
        if difference > tolerance:
            raise ValueError(f"The ONNX decoder of {record['name']} differs from Keras by {difference:.3g}.")
        largest, files[path.name] = max(largest, difference), path.stat().st_size
        metrics = record["metrics"]
        points.append({"name": record["name"], "K": k, "D": d, "rate_bits": record["rate_bits"],
                       **{key: metrics[key] for key in ("test_psnr_db", "test_mse", "test_perplexity", "codes_used")},
                       "codes": codes.ravel().tolist()})
    base = (index.get("grid") or {}).get("base") or list(sweep.BASE)
    data = {"base": list(base), "points": points, "images": base64.b64encode(
        np.round(images * 255).astype("uint8").tobytes()).decode("ascii"), "onnx_max_difference": largest}
    (out / SWEEP_DATA_FILE).write_text(json.dumps(data, separators=(",", ":")) + "\n", encoding="utf-8")
    files[SWEEP_DATA_FILE] = (out / SWEEP_DATA_FILE).stat().st_size
    return {"points": len(points), "files": files, "onnx_max_difference": largest, "tolerance": tolerance}
