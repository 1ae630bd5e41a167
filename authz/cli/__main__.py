"""``python -m authz.cli``: the same as the ``consentgate`` command."""

from authz.cli import main

main()
