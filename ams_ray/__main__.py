import sys

from ams_ray.evaluation.cli import main

sys.exit(main())
