import sys

from speciesgan.cli import main

sys.exit(main())
