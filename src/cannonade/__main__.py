import sys

from cannonade.cli.main import main

sys.exit(main())
