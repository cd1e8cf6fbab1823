"""Run the package on whatever backend KERAS_BACKEND names: train both quantizers and both
architectures briefly, save and load, and print JSON that tests/test_backends.py compares
with TensorFlow's. Usage: KERAS_BACKEND=jax python tests/backend_smoke.py OUT_DIR"""

import json
import sys
from pathlib import Path

import keras
import numpy as np

from vqvae_lessons import pretrained
from vqvae_lessons.data import load_mnist
from vqvae_lessons.priors import sampling
from vqvae_lessons.train import train_prior, train_vae, train_vqvae
from vqvae_lessons.vqvae import VQVAE

out = Path(sys.argv[1])
data = load_mnist()
result = {"backend": keras.backend.backend(), "histories": {}}
for architecture, quantizer in (("keras-example", "loss"), ("residual", "ema")):
    model, record = train_vqvae(architecture, 16, 4, quantizer, epochs=2, batch_size=32, train_size=128,
                                data=data, verbose=0)
    model.save_weights(out / f"{architecture}.weights.h5")
    loaded = VQVAE.from_config(model.get_config())
    loaded.load_weights(out / f"{architecture}.weights.h5")
    assert np.array_equal(loaded.encode(data.x_test), model.encode(data.x_test))
    result["histories"][architecture] = record["history"]
_, record = train_vae(2, epochs=2, batch_size=32, train_size=128, data=data, verbose=0)
result["histories"]["vae"] = record["history"]
for architecture in ("keras-example", "gated"):
    prior, record = train_prior(model, architecture, conditional=architecture == "gated", channels=8, num_layers=2,
                                epochs=3, batch_size=32, learning_rate=3e-3, train_size=128, data=data, verbose=0)
    labels = np.arange(4) if prior.conditional else None
    assert sampling.sample(prior, 4, labels=labels, seed=0).shape == (4, 7, 7)
    result["histories"][f"prior-{architecture}"] = record["history"]


def shipped(kind):
    return [name for name in pretrained.names(kind) if (pretrained.WEIGHTS_DIR / f"{name}.weights.h5").is_file()]


result["shipped_reconstructions"] = {
    name: pretrained.load(name).reconstruct(data.x_test[:16]).tolist() for name in shipped("vqvae") + shipped("vae")
}
result["shipped_log_probs"] = {}
for name in shipped("prior"):
    prior, vqvae = pretrained.load(name), pretrained.load(pretrained.card(name)["vqvae"])
    labels = data.y_test[:16].astype("int32") if prior.conditional else None
    codes = vqvae.encode(data.x_test[:16])
    if hasattr(prior, "log_probs"):
        log_probs = prior.log_probs(codes, labels)
    else:  # MaskGIT has no likelihood: its log-softmax with the lower three rows of each map hidden
        hidden = np.where(np.arange(7)[:, None] >= 4, -1, codes)
        logits = prior((hidden, labels) if prior.conditional else hidden)
        log_probs = keras.ops.convert_to_numpy(keras.ops.log_softmax(logits, axis=-1))
    result["shipped_log_probs"][name] = np.asarray(log_probs).tolist()
print(json.dumps(result))
