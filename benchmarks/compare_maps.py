"""Dump every explanation map (raw values) of the shapes models on the first example scenes to JSON, so two
checkouts can be compared: `PYTHONPATH=OLD python benchmarks/compare_maps.py old.json`, the same for NEW, then
`python benchmarks/compare_maps.py --diff old.json new.json` prints the largest difference."""
import json
import sys

import numpy as np

if sys.argv[1:2] == ["--diff"]:
    a, b = (json.load(open(p)) for p in sys.argv[2:4])
    common = sorted(set(a) & set(b))
    worst = max(float(np.max(np.abs(np.array(a[k]) - np.array(b[k])))) for k in common)
    print(f"{len(common)} maps in both, {len(set(a) ^ set(b))} in one only; largest difference {worst:g}")
    raise SystemExit(0)

import mmdemo  # noqa: E402
from mmdemo.explain import available_methods, explain  # noqa: E402
from mmdemo.world.examples import read_examples  # noqa: E402
out = {}
for name in ("shapes-cross", "shapes-early", "shapes-late"):
    model = mmdemo.load(name)
    for row in read_examples()[:3]:
        image = mmdemo.load_image(row["path"])
        t = mmdemo.Target("answer", row["answer"], question=row["question"])
        for m in available_methods(model):
            if m in ("shapley",):
                continue
            e = explain(model, image, t, method=m, cache=False)
            out[f"{name}/{row['file']}/{m}"] = np.asarray(e.raw).ravel().tolist()
json.dump(out, open(sys.argv[1], "w"))
print(len(out), "maps")
