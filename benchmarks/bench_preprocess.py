"""What each hub family's published image-processor settings make of real photos, and at what cost: the input size
(ViLT keeps the aspect, so its patch grid follows the photo), milliseconds per photo, and how far the resize-whole
PIL path the adapters used before was from the official pixels (in grey levels). Writes benchmarks/results/preprocess.json.

    OMP_NUM_THREADS=2 python benchmarks/bench_preprocess.py [--runs 20]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))   # run from a checkout without installing
from _common import median_ms, table, write  # noqa: E402

CLIP = dict(image_mean=[0.48145466, 0.4578275, 0.40821073], image_std=[0.26862954, 0.26130258, 0.27577711])
HALF = dict(image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])


def processors() -> dict:
    """family -> (image processor with the settings of the real checkpoint's preprocessor_config.json (see
    tests/test_hub_processors.py), patch size, the square side the adapters resized every photo to before)."""
    from transformers import BlipImageProcessor, CLIPImageProcessor, ViltImageProcessor, ViTImageProcessor

    return {
        "blip (Salesforce/blip-image-captioning-base)": (BlipImageProcessor(size={"height": 384, "width": 384},
                                                                            resample=3, **CLIP), 16, 384),
        "vilt (dandelin/vilt-b32-finetuned-vqa)": (ViltImageProcessor(size={"shortest_edge": 384}, size_divisor=32,
                                                                      resample=3, **HALF), 32, 384),
        "git (microsoft/git-base)": (CLIPImageProcessor(size={"shortest_edge": 224}, crop_size=224, resample=3,
                                                        **CLIP), 16, 224),
        "vit-gpt2 (nlpconnect/vit-gpt2-image-captioning)": (ViTImageProcessor(size={"height": 224, "width": 224},
                                                                               resample=2, **HALF), 16, 224),
    }


def square_path(image, processor, size: int) -> np.ndarray:
    """(3, size, size) the path the adapters used before: PIL resize of the whole photo, rescale, normalise."""
    from PIL import Image

    x = np.asarray(image.resize((size, size), Image.Resampling(int(processor.resample))), dtype=np.float32) / 255
    mean, std = np.array(processor.image_mean), np.array(processor.image_std)
    return ((x - mean) / std).transpose(2, 0, 1)


def main() -> None:
    import torch

    from mmdemo.config import ASSETS
    from mmdemo.images import load_image

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(2)
    photos = {"astronaut 640×480": load_image(ASSETS / "photos" / "astronaut.jpg").resize((640, 480)),
              "chelsea 451×300": load_image(ASSETS / "photos" / "chelsea.jpg"),
              "shuttle 132×240": load_image(ASSETS / "photos" / "shuttle.jpg")}
    results, rows = [], []
    for family, (processor, patch, side) in processors().items():
        for label, photo in photos.items():
            pixels = processor(images=[photo], return_tensors="pt")["pixel_values"][0].float()   # (3, H, W)
            H, W = pixels.shape[-2:]
            ms = median_ms(lambda: processor(images=[photo], return_tensors="pt"), runs=args.runs, warmup=2)
            old_ms = median_ms(lambda: square_path(photo, processor, side), runs=args.runs, warmup=2)
            r = {"family": family, "photo": label, "input": [H, W], "patch_grid": [H // patch, W // patch],
                 "official_ms": round(ms, 2), "old_path_ms": round(old_ms, 2), "old_path_input": [side, side]}
            if (H, W) == (side, side) and not getattr(processor, "do_center_crop", False):
                old = torch.from_numpy(square_path(photo, processor, side))
                levels = (pixels - old).abs() * torch.tensor(processor.image_std)[:, None, None] * 255
                r |= {"old_path_max_grey_levels": round(float(levels.max()), 2),
                      "old_path_mean_grey_levels": round(float(levels.mean()), 3)}
                note = f"old path: same size, at most {levels.max():.1f} grey levels apart"
            elif "vilt" in family:
                note = f"old path: {side}×{side}, grid {side // patch}×{side // patch}"
            else:
                note = f"old path: whole photo; now its centre {min(photo.size)} px of {max(photo.size)}"
            results.append(r)
            rows.append((f"{family.split()[0]} {label}",
                         f"{H}×{W} px, grid {H // patch}×{W // patch}, {ms:.1f} ms (old {old_ms:.1f} ms); {note}"))
    path = write("preprocess", {"results": results})
    table(rows)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
