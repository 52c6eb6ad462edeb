# Two-process cluster differential (review R18g): review-r18f's cl.py, run on this
# folder's fz.py cases (groups with a rotated sibling are copied whole).
#   python3 cl.py A B SEED N   (BASE=/tmp/r18g/cl)
import os, runpy, sys
here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
os.environ.setdefault("BASE", "/tmp/r18g/cl")
import fz  # noqa: E402,F401  this folder's cases: r18f's `import fz` finds them loaded
runpy.run_path(os.path.join(here, "..", "review-r18f", "cl.py"), run_name="__main__")
