"""`python -m camera_drivers.sim`: the same as `dozor-camsim`."""

import sys

from camera_drivers.sim.cli import main

sys.exit(main())
