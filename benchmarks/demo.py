"""What `roi-trt demo` prints, kept: each bundled photo's size, bpp, PSNR and stage times (its first run).

Run:  python benchmarks/demo.py [-o benchmarks/results/demo.csv] [--force]
The shipped demo model on the backend `roi-trt demo` picks (ONNX Runtime on a CPU); the photos at their
own sizes. The images the demo writes go to a temporary directory.
"""

import argparse
import os
import sys
import tempfile

from roi_trt.bench.results import output_arguments, parse_arguments, write_rows
from roi_trt.demo import run_demo


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    output_arguments(parser, os.path.join(os.path.dirname(__file__), "results", "demo.csv"))
    args = parse_arguments(parser, argv)
    with tempfile.TemporaryDirectory() as tmp:
        rows = run_demo(tmp)
    write_rows(args.output, list(rows[0]), rows, replace=args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
