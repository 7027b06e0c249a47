from inventory import io


def test_load_and_dump(tmp_path):
    path = tmp_path / "stock.csv"
    path.write_text("# comment\nA1,bolt,250,10,3\nB2,nut,100,5\n", encoding="utf-8")
    stock = io.load(path)
    assert io.dump(stock) == "A1,bolt,250,10,3\nB2,nut,100,5,0\n"
