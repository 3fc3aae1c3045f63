"""The MLP classifier spec (mlp_classifier.py) with a planted fault: every weight matrix zero (no symmetry breaking)."""
import importlib.util
import pathlib

_path = pathlib.Path(__file__).with_name("mlp_classifier.py")
_spec = importlib.util.spec_from_file_location("bench_mlp_classifier", _path)
_base = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_base)
globals().update(_base.make_spec(init_scale=0.0))
