"""Builds the rANS core; all metadata lives in setup.cfg, which JetPack 4.6's setuptools also reads."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("roi_trt._rans", ["roi_trt/_rans.c"], extra_compile_args=["-O3", "-std=c99"])])
