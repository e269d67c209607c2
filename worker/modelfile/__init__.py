"""The model file: read, checked against its schema and compiled into the plain data
``worker.scoring`` works with (``load``: one model; ``segments``: the default model with
its segment models; ``signals``: the signals the file defines)."""

from worker.modelfile.load import default_model_text, load_model, model_text, parse_model
from worker.modelfile.segments import load_models, parse_models

__all__ = [
    "default_model_text",
    "load_model",
    "load_models",
    "model_text",
    "parse_model",
    "parse_models",
]
