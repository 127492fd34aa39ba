import os

# Every test and every notebook under nbval inherits this environment, also when pytest is given only a notebook:
# CI-sized runs unless the caller chose a scale. (At the root, so that tests/ and notebooks/ share it.)
os.environ.setdefault("KDLAB_SCALE", "smoke")
