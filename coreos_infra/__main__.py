import sys

from coreos_infra.cli import main

sys.exit(main())
