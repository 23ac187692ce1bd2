import sys

from bixt.cli import main

sys.exit(main())
