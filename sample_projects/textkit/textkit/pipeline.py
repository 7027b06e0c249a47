"""Generator pipeline from text to normalised tokens."""

import re
import unicodedata
from functools import lru_cache

WORD = re.compile(r"[\w']+")
STOP_WORDS = frozenset(
    """a an and are as at be by for from has he in is it its of on that the
    to was were will with""".split()
)


@lru_cache(maxsize=4096)
def normalise(word):
    """Lower-case, strip accents and quotes."""
    decomposed = unicodedata.normalize("NFKD", word.lower())
    stripped = "".join(
        char for char in decomposed if not unicodedata.combining(char)
    )
    return stripped.strip("'")


def lines(text):
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            yield line


def tokens(text, keep_stop_words=False):
    for line in lines(text):
        for match in WORD.finditer(line):
            word = normalise(match.group())
            if not word:
                continue
            if keep_stop_words or word not in STOP_WORDS:
                yield word
