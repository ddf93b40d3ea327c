"""TensorFlow's start-up log lines kept off the console.

Importing TensorFlow ≥ 2.16 writes absl/oneDNN/cpu-feature lines straight to file
descriptor 2 from C++ (``WARNING: All log messages before absl::InitializeLog() ...``,
``oneDNN custom operations are on ...``), before ``TF_CPP_MIN_LOG_LEVEL`` is read: setting
it no longer silences them (measured with TensorFlow 2.20 on the development machine). The
CLI therefore imports TensorFlow once, up front, with descriptor 2 pointed at a temporary
file; if the import fails, what it wrote is replayed to stderr before the error propagates.
TensorFlow's Python logger is set to errors only: its warnings (e.g. "triggered
tf.function retracing" when the bootstrap replicas each trace their gradient function)
are about TensorFlow's internals, not the user's numbers.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
import tempfile

__all__ = ["import_tensorflow_quietly"]


def import_tensorflow_quietly() -> bool:
    """Import TensorFlow with its C++ start-up lines captured (not shown).

    Returns whether TensorFlow is imported afterwards (``False`` where it is not installed
    or Keras runs on another backend). A second call does nothing.
    """
    if "tensorflow" in sys.modules:
        return True
    if os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow" \
            or importlib.util.find_spec("tensorflow") is None:
        return False
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            importlib.import_module("tensorflow")
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    return True
