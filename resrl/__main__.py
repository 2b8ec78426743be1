import sys

from resrl.cli import main

sys.exit(main())
