import os

# The notebooks under nbval, also when pytest is given only a notebook (tests/conftest.py is then not loaded):
# CI-sized runs unless the caller chose a scale.
os.environ.setdefault("KDLAB_SCALE", "smoke")
