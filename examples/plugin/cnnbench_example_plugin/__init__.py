"""Two tiny models for cnnbench (see ``models.py`` and this folder's ``pyproject.toml``)."""
