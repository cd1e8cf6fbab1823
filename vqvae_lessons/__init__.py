"""vqvae_lessons: the finished, tested implementations behind the VQ-VAE Lessons course.

Modules, one concept each: ``data`` (MNIST), ``vae``, ``quantizer``, ``vqvae``,
``pixelcnn`` (priors over codes, sampling), ``judge`` (judging generated digits),
``metrics``, ``train`` (the training recipes), ``sweep`` (lesson 4's sweep),
``pretrained`` (shipped weights), ``plotting``, ``widgets`` and ``exercises``.
``python -m vqvae_lessons --help`` trains, evaluates, samples, judges and reproduces
the shipped weights from the command line.
"""

import os
import sys

__version__ = "0.1.0"


def _import_tensorflow_quietly():
    """TensorFlow prints start-up messages from C++ at import, which no log level
    silences; send them to /dev/null so they never reach a learner's screen."""
    if os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow" or "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    except OSError:  # no file descriptor 2 to silence
        return
    try:
        os.dup2(devnull, 2)
        import tensorflow  # noqa: F401
    except ImportError:
        pass  # Keras will say what is missing
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


_import_tensorflow_quietly()
