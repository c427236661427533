"""`python -m migrate`, for when the console script is not on PATH."""

from migrate.cli import main

if __name__ == "__main__":
    main(prog_name="migrate")
