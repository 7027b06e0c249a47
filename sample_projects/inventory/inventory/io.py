"""Reading stock files (CSV: sku,name,price_cents,quantity[,reorder_level])."""

from __future__ import annotations

import csv
from pathlib import Path

from inventory.model import Item, Stock, StockError


def parse_row(row: list[str], line: int) -> tuple[Item, int]:
    if len(row) not in (4, 5):
        raise StockError(f"line {line}: expected 4 or 5 fields, got {len(row)}")
    sku, name, price, quantity, *rest = row
    try:
        item = Item(sku, name, int(price), int(rest[0]) if rest else 0)
        return item, int(quantity)
    except ValueError as exc:
        raise StockError(f"line {line}: {exc}") from None


def load(path: Path) -> Stock:
    stock = Stock()
    with open(path, newline="", encoding="utf-8") as handle:
        for line, row in enumerate(csv.reader(handle), start=1):
            if not row or row[0].startswith("#"):
                continue
            stock.add(*parse_row(row, line))
    return stock


def dump(stock: Stock) -> str:
    lines = [
        f"{item.sku},{item.name},{item.price_cents},{qty},{item.reorder_level}"
        for item, qty in stock
    ]
    return "\n".join(lines) + "\n"
