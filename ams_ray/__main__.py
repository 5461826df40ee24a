import sys

from ams_ray.cli import main

sys.exit(main())
