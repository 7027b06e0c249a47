"""Keep track of items in stock, their prices and reorder levels."""

from inventory.model import Item, Stock, StockError
from inventory.pricing import Discount, apply_discounts

__all__ = ["Item", "Stock", "StockError", "Discount", "apply_discounts"]
__version__ = "1.0"
