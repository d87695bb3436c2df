"""python -m roi_trt.cli"""

import sys

from . import main

sys.exit(main())
