import pytest

from textkit import count_words, top_words, tokens
from textkit.__main__ import main


def test_tokens_skip_comments_and_stop_words():
    text = "# heading\nThe Café and the café\n\n"
    assert list(tokens(text)) == ["cafe", "cafe"]
    assert list(tokens(text, keep_stop_words=True)) == ["the", "cafe", "and", "the", "cafe"]


def test_counting_on_threads():
    counts = count_words(["fox dog", "fox", "dog fox"], workers=2)
    assert top_words(counts, 2) == [("fox", 3), ("dog", 2)]
    assert count_words([]) == {}


def test_main(tmp_path, capsys):
    path = tmp_path / "t.txt"
    path.write_text("owl owl bat\n", encoding="utf-8")
    assert main([str(path)]) == 0
    assert capsys.readouterr().out == "   2 owl\n   1 bat\n"


@pytest.mark.parametrize("argv, status", [([], 2), (["/no/such/file"], 1)])
def test_main_errors(argv, status):
    assert main(argv) == status
