from inventory import Discount, Item, apply_discounts
from inventory.pricing import Kind

BOLT = Item("A1", "bolt", 200)


def test_percent_and_fixed():
    rules = [Discount(Kind.PERCENT, 10), Discount(Kind.FIXED, 50)]
    assert apply_discounts(BOLT, 4, rules) == 800 - 200


def test_minimum_quantity():
    assert apply_discounts(BOLT, 1, [Discount(Kind.PERCENT, 50, min_quantity=2)]) == 200
