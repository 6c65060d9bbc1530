"""Hub adapters feed their networks exactly what each checkpoint's own processor makes of a photo: BLIP (caption and
VQA), ViLT (aspect kept, padded batch with pixel_mask), GIT (CLIP: shorter side, then centre crop) and ViT-GPT2.

Tiny random models of the real architectures at the real input sizes, with the preprocessor_config.json the real
checkpoints publish written out here (nothing is downloaded), on real photos of several sizes and aspect ratios."""
from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import mmdemo
from mmdemo.config import ASSETS
from mmdemo.errors import InputError
from mmdemo.explain import explain
from mmdemo.images import load_image
from mmdemo.models.base import Decoding, Target
import tiny_hub

ANSWERS = tiny_hub.ANSWERS
QUESTIONS = ["what color is the cat?", "is the dog on the red dog", "what color?", "is the cat red"]
CLIP_MEAN, CLIP_STD = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]

# preprocessor_config.json as the real checkpoints publish it
BLIP_PREPROCESSOR = {     # Salesforce/blip-image-captioning-base, Salesforce/blip-vqa-base
    "do_normalize": True, "do_resize": True, "image_mean": CLIP_MEAN, "image_std": CLIP_STD,
    "image_processor_type": "BlipImageProcessor", "processor_class": "BlipProcessor", "resample": 3,
    "rescale_factor": 0.00392156862745098, "size": {"height": 384, "width": 384}}
VILT_PREPROCESSOR = {     # dandelin/vilt-b32-finetuned-vqa
    "do_normalize": True, "do_resize": True, "feature_extractor_type": "ViltFeatureExtractor",
    "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "resample": 3, "size": 384, "size_divisor": 32}
GIT_PREPROCESSOR = {      # microsoft/git-base
    "crop_size": {"height": 224, "width": 224}, "do_center_crop": True, "do_convert_rgb": True, "do_normalize": True,
    "do_rescale": True, "do_resize": True, "image_mean": CLIP_MEAN, "image_processor_type": "CLIPImageProcessor",
    "image_std": CLIP_STD, "processor_class": "GitProcessor", "resample": 3, "rescale_factor": 0.00392156862745098,
    "size": {"shortest_edge": 224}}
VIT_GPT2_PREPROCESSOR = {  # nlpconnect/vit-gpt2-image-captioning
    "do_normalize": True, "do_resize": True, "feature_extractor_type": "ViTFeatureExtractor",
    "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "resample": 2, "size": 224}


# --- tiny checkpoints at the real input sizes, with the real preprocessor configs ---------------------------------
BUILDERS = {"blip-caption": partial(tiny_hub.save_blip_caption, image_size=384, patch=16, preprocessor=BLIP_PREPROCESSOR),
            "blip-vqa": partial(tiny_hub.save_blip_vqa, image_size=384, patch=16, preprocessor=BLIP_PREPROCESSOR),
            "vilt": partial(tiny_hub.save_vilt, image_size=384, patch=32, preprocessor=VILT_PREPROCESSOR),
            "git": partial(tiny_hub.save_git, image_size=224, patch=16, preprocessor=GIT_PREPROCESSOR),
            "vit-gpt2": partial(tiny_hub.save_vit_gpt2, image_size=224, patch=16, preprocessor=VIT_GPT2_PREPROCESSOR)}
GRIDS = {"blip-caption": (24, 24), "blip-vqa": (24, 24), "vilt": (12, 12), "git": (14, 14), "vit-gpt2": (14, 14)}


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny_hub_processors")
    for name, build in BUILDERS.items():
        build(root / name)
    return {name: root / name for name in BUILDERS}


@pytest.fixture(scope="module")
def models(folders):
    return {name: mmdemo.load(str(folder), device="cpu") for name, folder in folders.items()}


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    """Real photos (assets/photos, from scikit-image and matplotlib) at 640×480, 300×500, 97×61 and 451×300 px."""
    photo = {name: load_image(ASSETS / "photos" / f"{name}.jpg") for name in ("astronaut", "grace_hopper", "coffee",
                                                                             "chelsea")}
    return [photo["astronaut"].resize((640, 480), Image.Resampling.LANCZOS),
            photo["grace_hopper"].crop((60, 6, 360, 506)),
            photo["coffee"].resize((97, 61), Image.Resampling.LANCZOS),
            photo["chelsea"]]


def official(folder: Path, name: str):
    """The checkpoint's processor as its model card loads it: AutoProcessor, or the image processor for ViT-GPT2."""
    from transformers import AutoImageProcessor, AutoProcessor

    return AutoImageProcessor.from_pretrained(folder) if name == "vit-gpt2" else AutoProcessor.from_pretrained(folder)


def seen_pixels(model, run) -> list[torch.Tensor]:
    """The pixel tensors that reach the model's patch-embedding layer while `run()` runs."""
    seen: list[torch.Tensor] = []
    handle = model._patch_layer().register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    try:
        run()
    finally:
        handle.remove()
    return seen


def reference(photo: Image.Image, size: tuple[int, int], resample: int, mean, std, crop: int | None = None):
    """(3, H, W) the same steps written out with PIL: resize to `size` (W, H), centre crop, rescale, normalise."""
    im = photo.resize(size, Image.Resampling(resample))
    if crop:
        left, top = (im.width - crop) // 2, (im.height - crop) // 2
        im = im.crop((left, top, left + crop, top + crop))
    x = torch.from_numpy(np.asarray(im, dtype=np.float32) / 255).permute(2, 0, 1)
    return (x - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]


# --- the settings and sizes of the published configs ------------------------------------------------------------
@pytest.mark.parametrize("name", list(BUILDERS))
def test_patch_grid_of_the_real_input_size(models, name):
    assert models[name].info.patch_grid == GRIDS[name]


# (W, H) the photos 640×480, 300×500, 97×61, 451×300 become, worked out by hand from the published settings
SIZES = {
    "blip-caption": [(384, 384)] * 4, "git": [(224, 224)] * 4, "vit-gpt2": [(224, 224)] * 4,
    # ViLT: shorter side 384, longer at most int(1333 / 800 * 384) = 639, both cut down to a multiple of 32
    "vilt": [(512, 384), (352, 608), (608, 384), (576, 384)],
}


@pytest.mark.parametrize("name", ["blip-caption", "git", "vit-gpt2", "vilt"])
def test_pixels_follow_the_published_recipe(models, photos, name):
    """Each photo alone, against the recipe written out by hand with PIL: the sizes exactly, the values within two
    grey levels (PIL's and torchvision's filters round differently; measured: at most 2, 0.01 on average)."""
    model = models[name]
    for photo, (W, H) in zip(photos, SIZES[name]):
        pixels = model._pixels([photo])[0]
        assert pixels.shape == (3, H, W)
        if name in ("blip-caption", "git"):
            resample, mean, std = 3, CLIP_MEAN, CLIP_STD
        else:
            resample, mean, std = (2 if name == "vit-gpt2" else 3), [0.5] * 3, [0.5] * 3
        if name == "git":               # shorter side to 224, the longer in proportion (truncated), then the centre
            short = min(photo.size)
            ref = reference(photo, (int(photo.width * 224 / short), int(photo.height * 224 / short)), resample,
                            mean, std, crop=224)
        else:
            ref = reference(photo, (W, H), resample, mean, std)
        levels = (pixels - ref).abs() * torch.tensor(std)[:, None, None] * 255      # (3, H, W) in grey levels
        assert levels.max() < 2.1 and levels.mean() < 0.05, (name, photo.size)


# --- the adapters' pixels are the official processor's -----------------------------------------------------------
@pytest.mark.parametrize("name", ["blip-caption", "git", "vit-gpt2"])
def test_caption_sees_the_official_pixels(models, folders, photos, name):
    model = models[name]
    expected = official(folders[name], name)(images=photos, return_tensors="pt")["pixel_values"]
    seen = seen_pixels(model, lambda: model.caption(photos, Decoding(max_new_tokens=3)))
    assert seen and seen[0].shape == expected.shape
    torch.testing.assert_close(seen[0], expected, atol=1e-5, rtol=0)


def test_blip_vqa_sees_the_official_pixels(models, folders, photos):
    model = models["blip-vqa"]
    expected = official(folders["blip-vqa"], "blip-vqa")(images=photos, text=QUESTIONS, padding=True,
                                                      return_tensors="pt")
    seen = seen_pixels(model, lambda: model.answer(photos, QUESTIONS, top_k=2))
    assert seen and seen[0].shape == (4, 3, 384, 384)
    torch.testing.assert_close(seen[0], expected["pixel_values"], atol=1e-5, rtol=0)


def test_vilt_answers_as_the_official_processor_and_model_do(models, folders, photos):
    """Photos of four shapes in one batch: padded to the largest, pixel_mask marking the padding, as ViltProcessor
    makes them; the answers' probabilities are transformers' own ViLT forward on that batch."""
    model = models["vilt"]
    batch = official(folders["vilt"], "vilt")(images=photos, text=QUESTIONS, padding=True, return_tensors="pt")
    assert batch["pixel_values"].shape == (4, 3, 608, 608) and batch["pixel_mask"].shape == (4, 608, 608)
    for mask, (W, H) in zip(batch["pixel_mask"], SIZES["vilt"]):
        assert int(mask.sum()) == W * H and bool(mask[:H, :W].all())
    ours = model._processed(photos)
    assert set(ours) == {"pixel_values", "pixel_mask"}
    torch.testing.assert_close(ours["pixel_values"], batch["pixel_values"], atol=1e-5, rtol=0)
    assert torch.equal(ours["pixel_mask"], batch["pixel_mask"])

    seen = seen_pixels(model, lambda: model.answer(photos, QUESTIONS, top_k=len(ANSWERS)))
    torch.testing.assert_close(seen[0], batch["pixel_values"], atol=1e-5, rtol=0)
    answers = model.answer(photos, QUESTIONS, top_k=len(ANSWERS))
    with torch.no_grad():
        probs = torch.sigmoid(model.model(**batch).logits)                 # (4, answers)
    for a, p in zip(answers, probs):
        for answer, prob in a.top_k:
            assert prob == pytest.approx(float(p[ANSWERS.index(answer)]), abs=1e-5)
    alone = [model.answer([photo], [q], top_k=1)[0] for photo, q in zip(photos, QUESTIONS)]
    for a, b in zip(alone, answers):    # padding changes nothing: each photo alone gets the same answer
        assert a.answer == b.answer and a.prob == pytest.approx(b.prob, abs=1e-5)


def test_vilt_refuses_a_photo_too_thin_for_its_processor(models):
    """1000×20 px: the short side would be cut to 0 px by the processor, a clear input error instead of a crash."""
    strip = Image.new("RGB", (1000, 20), (120, 80, 40))
    with pytest.raises(InputError, match="cannot preprocess images of 1000×20 px"):
        models["vilt"].answer([strip], ["what color?"])


# --- explanations: one grid for every photo ---------------------------------------------------------------------
@pytest.mark.parametrize("name", ["vilt", "git"])
def test_explanations_see_the_whole_photo_on_the_fixed_grid(models, folders, photos, name):
    """Where the processor keeps the aspect (ViLT) or crops (GIT), explanations see the photo stretched to a square
    and passed through the same processor: the processor's own pixels for a square photo, the model's patch grid
    for every photo, maps at the photo's size."""
    model = models[name]
    processor = official(folders[name], name)
    H, W = model.info.input_size
    target = (Target("answer", "red", question="what color is the cat?") if name == "vilt"
              else Target("caption", "a red cat"))
    square = photos[0].resize((480, 480))
    inputs = model.prepare([square], [target])
    torch.testing.assert_close(inputs.pixels, processor(images=[square], return_tensors="pt")["pixel_values"],
                               atol=1e-5, rtol=0)
    for photo in photos:
        inputs = model.prepare([photo], [target])
        side = min(max(photo.size), 2 * max(H, W))       # the longer side, at most twice the input's
        stretched = photo.resize((side, side), Image.Resampling.BICUBIC)
        assert inputs.pixels.shape == (1, 3, H, W)
        torch.testing.assert_close(inputs.pixels, processor(images=[stretched], return_tensors="pt")["pixel_values"],
                                   atol=1e-5, rtol=0)
        e = explain(model, photo, target, "attention", cache=False)
        assert e.grid.shape == model.info.patch_grid and e.upsampled.shape == (photo.height, photo.width)
        assert np.isfinite(e.raw).all()


# --- the command line goes through the same path -----------------------------------------------------------------
def test_cli_answers_as_the_adapter_does(models, folders, photos, tmp_path):
    """`python -m mmdemo ask PHOTO Q --model FOLDER --json` on a 97×61 photo gives the in-process ViLT answer."""
    import os
    import subprocess
    import sys

    path = tmp_path / "photo.png"
    photos[2].save(path)
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root), "HF_HUB_OFFLINE": "1", "MMDEMO_DEVICE": "cpu"}
    out = subprocess.run([sys.executable, "-m", "mmdemo", "ask", str(path), QUESTIONS[0], "--model",
                          str(folders["vilt"]), "--json"], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    want = models["vilt"].answer([load_image(path)], [QUESTIONS[0]])[0]
    assert got["answer"] == want.answer and got["prob"] == pytest.approx(want.prob, abs=1e-5)
