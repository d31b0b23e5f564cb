import sys

from .interfaces.cli import main

if __name__ == "__main__":  # not when another process imports this module (multiprocessing's spawn)
    sys.exit(main())
