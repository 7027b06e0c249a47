"""python -m textkit FILE...: the three most common words of the files."""

import asyncio
import sys

from textkit import count_words, top_words


async def read(path):
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, _read_file, path)


def _read_file(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read()


async def gather_texts(paths):
    return await asyncio.gather(*(read(p) for p in paths))


def main(argv):
    if not argv:
        print("usage: python -m textkit FILE...", file=sys.stderr)
        return 2
    try:
        texts = asyncio.run(gather_texts(argv))
    except OSError as exc:
        print(f"textkit: {exc}", file=sys.stderr)
        return 1
    for word, count in top_words(count_words(texts)):
        print(f"{count:4} {word}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
