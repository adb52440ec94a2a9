"""Calibration: how well judges agree with humans, with intervals, drift and gates.

Pure functions over arrays (no database access); the modules arrive with the calibration work.
"""
