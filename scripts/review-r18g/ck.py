# Resume differential (review R18g): review-r18f's ck.py, run on this folder's
# fz.py cases.   python3 ck.py A B SEED N   (BASE=/tmp/r18g/ck)
import os, runpy, sys
here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
os.environ.setdefault("BASE", "/tmp/r18g/ck")
import fz  # noqa: E402,F401  this folder's cases: r18f's `import fz` finds them loaded
runpy.run_path(os.path.join(here, "..", "review-r18f", "ck.py"), run_name="__main__")
