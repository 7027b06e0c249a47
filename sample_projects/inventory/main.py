"""Command line: `python main.py report FILE` or `python main.py reorder FILE`."""

import argparse
import sys
from pathlib import Path

from inventory import io


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="inventory")
    parser.add_argument("command", choices=["report", "reorder"])
    parser.add_argument("file", type=Path)
    args = parser.parse_args(argv)
    try:
        stock = io.load(args.file)
    except (OSError, io.StockError) as exc:
        print(f"inventory: {exc}", file=sys.stderr)
        return 1
    if args.command == "report":
        for item, qty in stock:
            print(f"{item.sku:8} {item.name:20} {qty:5} x {item.price:>8}")
        total = stock.value_cents()
        print(f"total value: {total // 100}.{total % 100:02d}")
    else:
        for item in stock.to_reorder():
            print(item.sku)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
