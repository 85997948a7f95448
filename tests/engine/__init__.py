"""Tests of the engine seam."""
