"""``python -m warroom`` is the ``warroom`` command."""

from warroom.cli import main

main()
