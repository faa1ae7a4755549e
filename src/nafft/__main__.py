"""`python -m nafft` (what torchrun launches) is the same as the `nafft` command."""

import sys

from nafft.cli import main

sys.exit(main())
