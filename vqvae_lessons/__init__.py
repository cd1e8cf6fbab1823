"""vqvae_lessons: the finished, tested implementations behind the VQ-VAE Lessons course.

Modules, one concept each: ``data`` (MNIST), ``checks`` (input checks), ``vae``,
``quantizers`` (vector quantizers), ``vqvae``, ``priors`` (masked convolutions, PixelCNN
and transformer priors, sampling), ``judge`` (judging generated digits), ``metrics``, ``gradients``
(gradients on every backend), ``recipes`` and ``train`` (how each shipped model trains),
``sweep`` (lesson 4's sweep), ``pretrained`` (shipped weights), ``plotting``, ``widgets``
and ``exercises``. ``python -m vqvae_lessons --help`` trains, evaluates, samples, judges
and reproduces the shipped weights from the command line.

Importing the package does no work: it imports neither Keras nor TensorFlow. A lesson
calls :func:`quiet` first, to keep TensorFlow's start-up messages off the screen.
"""

import contextlib
import logging
import os
import sys

__version__ = "0.1.0"
__all__ = ["quiet"]


def quiet():
    """Keep TensorFlow's start-up noise off a learner's screen; call it before importing keras.

    TensorFlow writes start-up messages from C++ when it is imported, which no log level
    silences, and warns that the sampler's compiled steps were traced several times (on
    purpose: one step per case). ``quiet()`` imports Keras (and, on the TensorFlow backend,
    TensorFlow, and lets it look for devices) with the standard error stream sent to
    ``/dev/null``, lowers TensorFlow's C++ log level, and filters that warning out of
    TensorFlow's logger. On the JAX and PyTorch backends it only imports Keras. Calling it
    again does nothing more. Returns the name of the Keras backend in use.
    """
    first_import = "keras" not in sys.modules
    if first_import:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with _stderr_silenced(first_import):
        import keras

        backend = keras.config.backend()
        if backend == "tensorflow":
            import tensorflow

            if first_import:  # device discovery (CUDA's cuInit on a machine without a GPU) logs from C++ too
                tensorflow.config.list_physical_devices()
    if backend == "tensorflow":
        logger = logging.getLogger("tensorflow")
        if not any(isinstance(f, _QuietRetracing) for f in logger.filters):
            logger.addFilter(_QuietRetracing())
    return backend


class _QuietRetracing(logging.Filter):
    """The sampler compiles one step per case on purpose: TensorFlow's warning that its
    functions were traced several times would only alarm a learner."""

    def filter(self, record):
        return "triggered tf.function retracing" not in record.getMessage()


@contextlib.contextmanager
def _stderr_silenced(active=True):
    """File descriptor 2 goes to /dev/null inside the block (C++ messages included)."""
    if not active:
        yield
        return
    try:
        saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    except OSError:  # no file descriptor 2 to silence
        yield
        return
    try:
        sys.stderr.flush()
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
