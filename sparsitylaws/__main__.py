"""``python -m sparsitylaws`` runs the command-line interface."""

from sparsitylaws.cli import main

if __name__ == "__main__":
    main()
