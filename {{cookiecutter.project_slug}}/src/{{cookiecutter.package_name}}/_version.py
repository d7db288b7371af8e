"""The package version; pyproject.toml reads it from here (the single place to bump it)."""

__version__ = "{{ cookiecutter.version }}"
