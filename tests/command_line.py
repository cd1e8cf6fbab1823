"""Running ``python -m vqvae_lessons ARGS`` from a test: in this process (:func:`run`), which spares each call
the seconds a new process spends starting TensorFlow, or as a learner runs it, in a new process
(:func:`run_in_a_new_process`), which ``tests/test_cli.py`` keeps for the entry point itself. Both return a
``subprocess.CompletedProcess`` with the exit status and what the command printed."""

import contextlib
import io
import os
import subprocess
import sys
import traceback

from vqvae_lessons import cli


def run(*args, env=None):
    """``cli.main(args)`` with ``env`` added to the environment for its duration; an exception that the command
    line lets through is exit status 1 with its traceback on standard error, as Python's own exit would be."""
    out, err = io.StringIO(), io.StringIO()
    saved = {key: os.environ.get(key) for key in (env or {})}
    os.environ.update(env or {})
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status = cli.main([str(arg) for arg in args])
            except SystemExit as exit:  # argparse: --help (0) and bad flags (2); sys.exit("message"): 1
                status = exit.code if isinstance(exit.code, int) else 0 if exit.code is None else 1
                if not isinstance(exit.code, int | None):  # what Python prints of sys.exit("message")
                    print(exit.code, file=sys.stderr)
            except Exception:  # noqa: BLE001 - what a new process would print before exiting with 1
                traceback.print_exc()
                status = 1
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return subprocess.CompletedProcess(["python", "-m", "vqvae_lessons", *args], status, out.getvalue(),
                                       err.getvalue())


def run_in_a_new_process(*args, env=None, cwd=None):
    """``python -m vqvae_lessons ARGS`` in a new Python process, as a learner runs it."""
    return subprocess.run([sys.executable, "-m", "vqvae_lessons", *map(str, args)], capture_output=True, text=True,
                          timeout=600, env={**os.environ, **(env or {})}, cwd=cwd)
