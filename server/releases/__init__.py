"""Release channels (``sentiment@stable``), traffic splits, shadow runs and calibrations, from one file."""
