import pytest

from inventory import Item, Stock, StockError


def make_stock():
    stock = Stock()
    stock.add(Item("A1", "bolt", 250, reorder_level=3), 10)
    stock.add(Item("B2", "nut", 100, reorder_level=5), 5)
    return stock


def test_value_and_iteration():
    stock = make_stock()
    assert [item.sku for item, _ in stock] == ["A1", "B2"]
    assert stock.value_cents() == 250 * 10 + 100 * 5


def test_remove_and_reorder():
    stock = make_stock()
    assert stock.remove("A1", 8) == 2
    assert [item.sku for item in stock.to_reorder()] == ["A1", "B2"]


def test_errors():
    stock = make_stock()
    with pytest.raises(StockError, match="unknown item"):
        stock.remove("ZZ", 1)
    with pytest.raises(StockError, match="only 5 left"):
        stock.remove("B2", 6)
    with pytest.raises(StockError):
        Item("", "nameless", 1)


def test_price_formatting():
    assert Item("X", "x", 1205).price == "12.05"
