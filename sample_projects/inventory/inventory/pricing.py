"""Discount rules."""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod

from inventory.model import Item


class Kind(enum.Enum):
    PERCENT = "percent"
    FIXED = "fixed"
    BULK = "bulk"


class Rule(ABC):
    @abstractmethod
    def cents_off(self, item: Item, quantity: int) -> int: ...


class Discount(Rule):
    def __init__(self, kind: Kind, amount: int, min_quantity: int = 1):
        self.kind = kind
        self.amount = amount
        self.min_quantity = min_quantity

    def cents_off(self, item: Item, quantity: int) -> int:
        if quantity < self.min_quantity:
            return 0
        match self.kind:
            case Kind.PERCENT:
                return item.price_cents * quantity * self.amount // 100
            case Kind.FIXED:
                return min(self.amount, item.price_cents) * quantity
            case Kind.BULK:
                free_items = quantity // self.min_quantity
                return free_items * item.price_cents
            case _:  # pragma: no cover
                raise ValueError(self.kind)


def apply_discounts(item: Item, quantity: int, rules: list[Rule]) -> int:
    """Total price in cents after the best discount."""
    total = item.price_cents * quantity
    best = max((rule.cents_off(item, quantity) for rule in rules), default=0)
    return max(total - best, 0)
