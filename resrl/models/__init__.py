"""Tiny locally built models and our own chat templates."""

from resrl.models.templates import TEMPLATES, load_template
from resrl.models.tiny import build_model, build_tiny, build_tokenizer

__all__ = ["TEMPLATES", "build_model", "build_tiny", "build_tokenizer", "load_template"]
