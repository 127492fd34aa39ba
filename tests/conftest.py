import os

# Notebooks under nbval inherit this environment: CI-sized runs unless the caller chose a scale.
os.environ.setdefault("KDLAB_SCALE", "smoke")
