import sys

from ams_ray.device.http_device import main

sys.exit(main())
