# The snippets are scripts shown in the book and run by tests/test_book_snippets.py (they need
# PyTorch); keep pytest's --doctest-modules from importing them while collecting book/.
collect_ignore_glob = ["snippets/*.py"]
