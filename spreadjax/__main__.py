"""``python -m spreadjax``: the same command line as the ``spreadjax`` console script."""

from ._cli import main

if __name__ == "__main__":
    main()
