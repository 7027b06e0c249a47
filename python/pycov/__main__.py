"""``python -m pycov`` and the ``pycov`` console script."""

import sys


def main() -> None:
    from pycov._pycov import main as _main

    # Not `sys.exit`: the measured program may have replaced it.
    raise SystemExit(_main(sys.argv[1:]))


if __name__ == "__main__":
    main()
