"""Counting words, one thread per text."""

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from textkit.pipeline import tokens

_lock = threading.Lock()


def timed(label):
    """Decorator that counts calls (a stand-in for real instrumentation)."""

    def decorate(func):
        calls = {"n": 0}

        def wrapper(*args, **kwargs):
            with _lock:
                calls["n"] += 1
            return func(*args, **kwargs)

        wrapper.calls = calls
        wrapper.__name__ = f"{label}:{func.__name__}"
        return wrapper

    return decorate


@timed("count")
def count_one(text):
    return Counter(tokens(text))


def count_words(texts, workers=4):
    """Counts words over many texts in parallel threads."""
    total = Counter()
    if not texts:
        return total
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for counts in pool.map(count_one, texts):
            total.update(counts)
    return total


def top_words(counts, n=3):
    ranked = sorted(
        counts.items(),
        key=lambda pair: (-pair[1], pair[0]),
    )
    return ranked[:n]
