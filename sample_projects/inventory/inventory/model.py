"""The stock model: items and quantities."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    from collections.abc import Iterable


class StockError(Exception):
    """An impossible stock operation."""


@dataclass(frozen=True)
class Item:
    """One kind of thing we sell."""

    sku: str
    name: str
    price_cents: int
    reorder_level: int = 0

    def __post_init__(self) -> None:
        if not self.sku:
            raise StockError("an item needs a SKU")
        if self.price_cents < 0:
            raise StockError(
                f"{self.sku}: negative price {self.price_cents}"
            )

    @property
    def price(self) -> str:
        euros, cents = divmod(self.price_cents, 100)
        return f"{euros}.{cents:02d}"


@dataclass
class Stock:
    """Quantities per item."""

    items: dict[str, Item] = field(default_factory=dict)
    quantities: dict[str, int] = field(default_factory=dict)

    def add(self, item: Item, quantity: int = 0) -> None:
        if item.sku in self.items and self.items[item.sku] != item:
            raise StockError(f"{item.sku}: conflicting definitions")
        self.items[item.sku] = item
        self.quantities[item.sku] = self.quantities.get(item.sku, 0) + quantity

    def remove(self, sku: str, quantity: int) -> int:
        available = self.quantities.get(sku)
        if available is None:
            raise StockError(f"{sku}: unknown item")
        if quantity > available:
            raise StockError(
                f"{sku}: only {available} left, "
                f"cannot remove {quantity}"
            )
        self.quantities[sku] = available - quantity
        return self.quantities[sku]

    def __iter__(self) -> Iterator[tuple[Item, int]]:
        for sku in sorted(self.items):
            yield self.items[sku], self.quantities[sku]

    def value_cents(self) -> int:
        return sum(item.price_cents * qty for item, qty in self)

    def to_reorder(self) -> list[Item]:
        return [item for item, qty in self if qty <= item.reorder_level]

    def merge(self, others: Iterable[Stock]) -> Stock:  # pragma: no cover
        merged = Stock(dict(self.items), dict(self.quantities))
        for other in others:
            for item, qty in other:
                merged.add(item, qty)
        return merged
