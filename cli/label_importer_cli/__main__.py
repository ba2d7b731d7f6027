"""`python -m label_importer_cli`, the same as the installed `label-importer` command."""

import sys

from label_importer_cli.commands import main

if __name__ == "__main__":
    sys.exit(main())
