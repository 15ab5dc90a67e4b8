"""``python -m dmabuf`` runs the command line."""

from .cli import main

main()
