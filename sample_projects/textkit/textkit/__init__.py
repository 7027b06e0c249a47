"""Word statistics for text files."""

from textkit.counting import count_words, top_words
from textkit.pipeline import tokens

__all__ = ["count_words", "top_words", "tokens"]
