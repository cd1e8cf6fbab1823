"""Training functions: one per model, used by the command line, the shipped weights
and the lessons, so that all of them train the same way. :func:`fit` is the loop they
share (the judge's too); :mod:`~vqvae_lessons.recipes` holds the settings each shipped
model trained with, and :func:`~vqvae_lessons.recipes.train` trains one of them."""

from __future__ import annotations

import statistics
import sys
import time

import keras
import numpy as np

from . import distribute
from .checks import check_train_size
from .data import load_dataset, load_mnist, random_shift, shift_moves
from .priors.build import build_prior, fix_label
from .quantizers import CodebookMaintenance
from .vae import VAE
from .vqvae import VQVAE


class EpochTimer(keras.callbacks.Callback):
    """Records the wall-clock seconds each epoch spends training (validation excluded) in ``seconds``,
    over every ``fit`` it is given to (:func:`fit` calls ``model.fit`` once an epoch for epochs drawn
    as they start)."""

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start, self._train_end = time.perf_counter(), None

    def on_test_begin(self, logs=None):  # validation starts: training of this epoch is over
        if self._train_end is None:
            self._train_end = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append((self._train_end or time.perf_counter()) - self._start)


class _RunProgress(keras.callbacks.ProgbarLogger):
    """Keras's progress bar and lines for a run fitted one epoch at a time: "Epoch k/EPOCHS" of the whole run."""

    def __init__(self, epochs):
        super().__init__()
        self.run_epochs = epochs

    def set_params(self, params):
        super().set_params(params)
        self.epochs = self.run_epochs


def fit(model, images, epochs, batch_size, learning_rate, validation_images, callbacks, verbose, targets=None,
        validation_targets=None, loss=None, lr_schedule="constant", epoch_data=None, steps_per_epoch=None):
    """Compile ``model`` with Adam (``lr_schedule`` "constant", or "cosine" down to 0 over the run) and
    ``loss``, fit it and time each epoch; return the record: the settings, the seconds per epoch (their
    median and total) and the Keras history. ``images`` (and ``targets``) as ``keras.Model.fit`` takes
    them, shuffled anew each epoch. Or ``epoch_data``: an iterator that gives each epoch's
    ``(inputs, targets)``, already shuffled, of ``steps_per_epoch`` whole batches, when that epoch starts
    (``images`` and ``targets`` None): ``model.fit`` then runs once an epoch, and the record also holds
    ``drawing_seconds_per_epoch``, the seconds each epoch took to draw (:func:`epochs_of_codes`: moving and
    encoding images), which ``seconds_per_epoch`` leaves out.
    ``verbose="auto"``: a progress bar in a terminal, a line an epoch elsewhere."""
    if epochs < 1 or batch_size < 1 or learning_rate <= 0:
        raise ValueError(f"Need epochs >= 1, batch_size >= 1 and learning_rate > 0; got {epochs}, {batch_size}, "
                         f"{learning_rate}.")
    timer = EpochTimer()
    if lr_schedule not in ("constant", "cosine"):
        raise ValueError(f"lr_schedule={lr_schedule!r} is not known: use 'constant' or 'cosine'.")
    rate = learning_rate
    if lr_schedule == "cosine":  # from learning_rate down to 0 over the whole run
        steps = epochs * (steps_per_epoch or -(-len(images[0] if isinstance(images, tuple) else images) // batch_size))
        rate = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=steps)
    model.compile(optimizer=keras.optimizers.Adam(rate), loss=loss)
    if verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 2  # a live progress bar in a terminal, a line an epoch elsewhere
    validation = None
    if validation_images is not None:
        validation = (validation_images,) if validation_targets is None else (validation_images, validation_targets)
    extra = {}
    if epoch_data is None:
        distribute.before_fit(model, images, targets)  # several TensorFlow replicas only
        history = model.fit(images, targets, epochs=epochs, batch_size=batch_size, verbose=verbose,
                            validation_data=validation, callbacks=[timer, *callbacks]).history
    else:
        history, drawing = _fit_epoch_by_epoch(model, epoch_data, epochs, batch_size, verbose, validation,
                                               [timer, *callbacks])
        extra = {"drawing_seconds_per_epoch": [round(s, 2) for s in drawing]}
    return {
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "lr_schedule": lr_schedule,
        "seconds_per_epoch": [round(s, 2) for s in timer.seconds],
        "median_seconds_per_epoch": round(statistics.median(timer.seconds), 2),
        "total_seconds": round(sum(timer.seconds), 1),
        **extra,
        "history": {k: [round(float(v), 6) for v in vs] for k, vs in history.items()},
    }


def _fit_epoch_by_epoch(model, epoch_data, epochs, batch_size, verbose, validation, callbacks):
    """``model.fit`` once an epoch, on the data ``epoch_data`` gives as that epoch starts, without
    shuffling it again; the same run as one ``fit`` over every epoch's batches laid end to end (the
    optimizer, its schedule and the model's seeds carry on from epoch to epoch). Returns the history
    of the whole run and the seconds each epoch's data took to draw."""
    progress = [_RunProgress(epochs)] if verbose else []
    history, drawing, epoch_data = {}, [], iter(epoch_data)
    for epoch in range(epochs):
        start = time.perf_counter()
        inputs, targets = next(epoch_data)
        drawing.append(time.perf_counter() - start)
        if epoch == 0:
            distribute.before_fit(model, inputs, targets)  # several TensorFlow replicas only
        logs = model.fit(inputs, targets, batch_size=batch_size, initial_epoch=epoch, epochs=epoch + 1,
                         shuffle=False, verbose=verbose, validation_data=validation,
                         callbacks=[*progress, *callbacks]).history
        for key, values in logs.items():
            history.setdefault(key, []).extend(values)
    return history, drawing


def train_vqvae(architecture="residual", num_embeddings=128, embedding_dim=16, quantizer="ema", beta=0.25,
                decay=0.99, epochs=30, batch_size=128, learning_rate=1e-3, seed=0, kmeans_init=True,
                restart_dead_codes=True, train_size=None, data=None, validate=True, verbose="auto",
                validation="split", gradient="straight_through", codebook_transform=False, levels=None, bits=None,
                num_quantizers=None, quantizer_dropout=0.0, callbacks=(), dataset=None, devices=None, pieces=None,
                forward=None):
    """Train a :class:`VQVAE` on MNIST; return ``(model, record)``.

    ``record`` holds the settings, per-epoch seconds and the Keras history.
    ``validation`` "split": train on the first 55,000 training images and draw the epoch
    curves (``val_*``) on the last 5,000; "test": all 60,000, curves on the test set (as
    recipes did before the split; see :meth:`~vqvae_lessons.data.MNIST.split`). ``train_size`` trains on the
    first N of them only (for quick runs); ``data`` is a :class:`~vqvae_lessons.data.MNIST`
    already loaded. ``gradient``, ``codebook_transform``, ``levels``, ``bits``, ``num_quantizers``
    and ``quantizer_dropout`` choose the quantizer (see :class:`VQVAE`). The codebook maintenance
    applies where there is a codebook to maintain: FSQ and LFQ have none (the record says
    ``kmeans_init`` and ``restart_dead_codes`` False for them), residual VQ starts every stage at
    k-means centroids but has no restarts. ``callbacks``: more Keras callbacks, run after the maintenance.
    ``dataset``: ``"mnist"`` or ``"fashion_mnist"`` (:func:`~vqvae_lessons.data.load_dataset`; default:
    ``data``'s, else MNIST); ``data``, when given, must be that dataset.
    ``devices``: train data parallel on several devices (see :func:`~vqvae_lessons.distribute.distribution_for`):
    None or 1, the default device; N, the backend's first N GPUs (else CPU devices); or a
    ``keras.distribution.DataParallel`` (JAX) or ``tf.distribute.MirroredStrategy`` (TensorFlow). ``batch_size``
    is the global batch, ``batch_size / N`` images a device, and must divide by N; the codebook's
    statistics are the global batch's. The training and validation images are cut to a multiple of N
    (:func:`~vqvae_lessons.distribute.even`: at most N - 1 left out), and the record says ``devices``.

    ``pieces`` and ``forward``: the learner's functions the model is built from (see :class:`VQVAE`).
    """
    check_train_size(train_size)
    keras.utils.set_random_seed(seed)
    data = data or load_dataset(dataset or "mnist")
    if dataset is not None and data.dataset != dataset:
        raise ValueError(f"data holds {data.dataset} but dataset={dataset!r}: pass load_dataset({dataset!r}) "
                         f"as data, or leave data out.")
    x_fit, _, x_val, _ = data.split(validation)
    images = x_fit[:train_size]
    with distribute.scope(devices, batch_size) as count:  # one device: no scope, nothing changes
        images, x_val = distribute.even((images, x_val), count)  # several: every batch splits evenly
        model = VQVAE(architecture, num_embeddings, embedding_dim, quantizer, beta=beta, decay=decay,
                      data_variance=data.variance, gradient=gradient, codebook_transform=codebook_transform,
                      levels=levels, bits=bits, num_quantizers=num_quantizers, quantizer_dropout=quantizer_dropout,
                      pieces=pieces, forward=forward)
        kmeans_init = kmeans_init and hasattr(model.quantizer, "initialize_kmeans")
        restart_dead_codes = restart_dead_codes and hasattr(model.quantizer, "restart_dead_codes")
        maintenance = CodebookMaintenance(images, kmeans_init=kmeans_init, restart_dead_codes=restart_dead_codes,
                                          seed=seed)
        callbacks = ([maintenance] if (kmeans_init or restart_dead_codes) else []) + list(callbacks)
        record = fit(model, images, epochs, batch_size, learning_rate, x_val if validate else None,
                     callbacks, verbose)
    record.update(seed=seed, train_size=len(images), validation=validation, dataset=data.dataset,
                  kmeans_init=kmeans_init, restart_dead_codes=restart_dead_codes,
                  codes_restarted=sum(n for _, n in maintenance.history), **_devices_entry(count))
    return model, record


def train_vae(latent_dim=2, epochs=30, batch_size=128, learning_rate=1e-3, seed=0, train_size=None, data=None,
              validate=True, verbose="auto", validation="split", callbacks=(), reparameterize=None,
              kl_divergence=None, loss=None):
    """Train a :class:`VAE` on MNIST; return ``(model, record)`` as :func:`train_vqvae` does (``callbacks`` too).
    ``reparameterize``, ``kl_divergence``, ``loss``: the model's pieces (None: the package's), see :class:`VAE`."""
    check_train_size(train_size)
    keras.utils.set_random_seed(seed)
    data = data or load_mnist()
    x_fit, _, x_val, _ = data.split(validation)
    images = x_fit[:train_size]
    model = VAE(latent_dim, seed=seed, reparameterize=reparameterize, kl_divergence=kl_divergence, loss=loss)
    record = fit(model, images, epochs, batch_size, learning_rate, x_val if validate else None, list(callbacks),
                 verbose)
    record.update(seed=seed, train_size=len(images), validation=validation)
    return model, record


def train_prior(vqvae, architecture="gated", conditional=False, channels=None, num_layers=None, heads=None,
                mlp_ratio=None, epochs=15,
                batch_size=128, learning_rate=1e-3, seed=0, train_size=None, data=None, validate=True,
                verbose="auto", lr_schedule="constant", dropout=0.0, augment=0.0, condition_on_moves=False,
                codes=None, validation="split", devices=None, callbacks=(), prior_options=None):
    """Train a prior (``architecture``: a :class:`~vqvae_lessons.priors.pixelcnn.PixelCNN`'s, "transformer" or
    "maskgit", see :func:`~vqvae_lessons.priors.build.build_prior`) on the codes ``vqvae`` gives
    MNIST's training images (with their digit labels when ``conditional``); return
    ``(prior, record)`` as :func:`train_vqvae` does (``validation`` too). The loss, and
    ``val_loss`` on the validation images' codes, are negative log-likelihoods in nats per code (MaskGIT's: the
    cross-entropy at randomly hidden positions, see :class:`~vqvae_lessons.priors.transformer.MaskGITPrior`).
    ``heads`` and ``mlp_ratio``: a transformer's (None: the architecture's, as for ``channels``).
    ``lr_schedule`` "cosine" lowers the learning rate to 0 along a cosine over the run; ``dropout``
    (gated and transformer priors) and ``augment`` (see :func:`epochs_of_codes`) regularise a long run.
    ``condition_on_moves`` (with ``augment``, unconditional, not the Keras example's): tell
    the prior which move made each map, as a label (0 for unmoved maps), so that it learns from the
    moved digits without learning to draw them, and return the prior of unmoved maps
    (:func:`~vqvae_lessons.priors.build.fix_label`): distribution augmentation (Jun et al., 2020).
    ``codes``: the training images' maps ``(N, H, W)``, when the caller has already encoded them.
    ``devices``: train data parallel on several devices, as :func:`train_vqvae` does (``vqvae`` encodes on
    the default device). ``callbacks``: more Keras callbacks, as :func:`train_vqvae` takes them.
    ``prior_options``: more keyword arguments of the prior's class (e.g. MaskGIT's ``label_smoothing``; not
    recorded by a recipe: for experiments such as ``benchmarks/maskgit_training.py``).
    """
    if not 0 <= augment <= 1:
        raise ValueError(f"augment is the fraction of training images moved each epoch, in [0, 1], got "
                         f"{augment!r}.")
    if condition_on_moves and (not augment or conditional or architecture == "keras-example"):
        raise ValueError("condition_on_moves tells an unconditional gated or transformer prior which move made each "
                         "map: it needs augment > 0, conditional=False and an architecture other than the Keras "
                         "example's.")
    check_train_size(train_size)
    keras.utils.set_random_seed(seed)
    data = data or load_mnist()
    x_fit, y_fit, x_val, y_val = data.split(validation)
    images = x_fit[:train_size]
    if codes is not None and len(codes) != len(images):
        fit_name = "data.x_fit" if validation == "split" else "data.x_train"
        raise ValueError(f"codes are the maps of the {len(images)} training images (train_size={train_size}), got "
                         f"{len(codes)} maps: encode {fit_name}[:train_size], or leave codes out.")
    codes = vqvae.encode(images) if codes is None else codes
    labels = y_fit[:train_size].astype("int32") if conditional else None
    test_codes = vqvae.encode(x_val) if validate else None
    num_classes = 10 if conditional else 1 + len(shift_moves()) if condition_on_moves else None
    with distribute.scope(devices, batch_size) as count:  # one device: no scope, nothing changes
        # several devices: every batch splits evenly among them
        images, codes, labels, test_codes, y_val = distribute.even((images, codes, labels, test_codes, y_val), count)
        prior = build_prior(architecture, vqvae.num_embeddings, num_classes=num_classes, channels=channels,
                            num_layers=num_layers, dropout=dropout, heads=heads, mlp_ratio=mlp_ratio,
                            **(prior_options or {}))
        test_inputs = test_codes
        if conditional and validate:
            test_inputs = (test_codes, y_val.astype("int32"))
        if condition_on_moves and validate:  # the test maps are unmoved: label 0
            test_inputs = (test_codes, np.zeros(len(test_codes), "int32"))

        def inputs_of(maps, labels, moves):
            """What the prior reads: its maps, with their digit labels or the moves that made them."""
            return (maps, labels) if conditional else (maps, moves) if condition_on_moves else maps

        epoch_data, steps_per_epoch, inputs = None, None, inputs_of(codes, labels, None)
        if augment:  # each epoch's maps, moved and encoded as that epoch starts
            steps_per_epoch = len(codes) // batch_size
            drawn = epochs_of_codes(vqvae, images, codes, labels, epochs, augment, batch_size, seed)
            epoch_data = ((inputs_of(maps, maps_labels, moves), maps) for maps, maps_labels, moves in drawn)
            inputs = None
        record = fit(prior, inputs, epochs, batch_size, learning_rate, test_inputs if validate else None,
                     list(callbacks), verbose, targets=None if augment else codes, validation_targets=test_codes,
                     loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), lr_schedule=lr_schedule,
                     epoch_data=epoch_data, steps_per_epoch=steps_per_epoch)
    record.update(seed=seed, train_size=len(codes), validation=validation, augment=augment,
                  condition_on_moves=condition_on_moves, **_devices_entry(count))
    return (fix_label(prior, 0) if condition_on_moves else prior), record


def _devices_entry(count):
    """What a record says of the devices: ``{"devices": count}`` when it trained on several, else nothing (the
    records, and cards, of single-device runs stay as they were)."""
    return {"devices": count} if count > 1 else {}


def epochs_of_codes(vqvae, images, codes, labels, epochs, augment, batch_size=128, seed=0):
    """Each epoch's training maps for a prior, drawn when that epoch starts: an iterator of ``epochs``
    ``(codes, labels, moves)``, one epoch each, so that one epoch's maps are held at a time.

    Each epoch is the training maps ``codes`` ``(N, H, W)`` in a new random order, the last
    ``N % batch_size`` of that order left out so that every batch is whole
    (``(N // batch_size * batch_size, H, W)``), with a fraction ``augment`` of them (chosen anew each
    epoch) replaced by the codes ``vqvae`` gives their image moved by a pixel or so
    (:func:`~vqvae_lessons.data.random_shift`), so the prior rarely sees the same map twice.
    ``labels`` are the maps' labels in the same order, or None; ``moves`` ``(len(codes),)`` int32 the
    move that made each map (0: unmoved; see ``random_shift``). Seeded: the same ``seed`` draws the
    same epochs, in order. Moving and encoding takes a few seconds an epoch.
    """
    steps_per_epoch = len(codes) // batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"augment needs at least one batch of training maps ({batch_size}), got {len(codes)}.")
    return _draw_epochs(vqvae, images, codes, labels, epochs, augment, steps_per_epoch * batch_size, seed)


def _draw_epochs(vqvae, images, codes, labels, epochs, augment, per_epoch, seed):
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        order = rng.permutation(len(codes))[:per_epoch]
        transformed = np.flatnonzero(rng.random(per_epoch) < augment)
        drawn, moves = codes[order], np.zeros(per_epoch, "int32")
        if len(transformed):
            moved, moves[transformed] = random_shift(images[order[transformed]], seed=int(rng.integers(2**31)),
                                                     return_moves=True)
            drawn[transformed] = vqvae.encode(moved)
        yield drawn, None if labels is None else labels[order], moves
