"""Writes the tiny fake CUB and COCO folders the builder tests read.

  python tf_t2i/data/dummy_data/make_dummy_data.py   # rewrites cub/, coco_attngan/, coco_official/

Images are 32x24 JPEGs: a flat background with one coloured block (the "bird"), so a
bounding-box crop is easy to check by eye and by test. The pickles are written the
way Python 2 wrote AttnGAN's (protocol 2, `str` as SHORT_BINSTRING, unicode words as
BINUNICODE) by a small hand encoder, so the tests read the same opcodes as the real
files. Everything is fixed: running the script twice gives the same files.
"""

import json
import os
import shutil
import struct

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
WIDTH, HEIGHT = 32, 24

_WORDS = ["bird", "small", "red", "wings", "black", "beak", "white", "belly", "long",
          "tail", "short", "grey", "crown", "yellow", "eye"]


# --- Python 2 style pickles. ------------------------------------------------------------
def py2_pickle(value) -> bytes:
    """Protocol-2 pickle of str/bytes/int/list/dict as Python 2 writes it (no memo)."""
    return b"\x80\x02" + _py2_body(value) + b"."


def _py2_body(value) -> bytes:
    if isinstance(value, bytes):  # Python 2 `str`.
        assert len(value) < 256
        return b"U" + bytes([len(value)]) + value
    if isinstance(value, str):    # Python 2 `unicode`.
        data = value.encode("utf-8")
        return b"X" + struct.pack("<I", len(data)) + data
    if isinstance(value, bool):
        raise TypeError("not needed")
    if isinstance(value, int):
        return (b"K" + bytes([value])) if 0 <= value < 256 else b"J" + struct.pack("<i", value)
    if isinstance(value, list):
        return b"](" + b"".join(_py2_body(v) for v in value) + b"e"
    if isinstance(value, dict):
        return b"}(" + b"".join(_py2_body(k) + _py2_body(v) for k, v in value.items()) + b"u"
    raise TypeError(type(value))


def _write(path, data, mode="wb"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
        f.write(data)


def _image(seed: int, box):
    """uint8 [HEIGHT, WIDTH, 3]: background colour plus a block filling `box` (x, y, w, h)."""
    rng = np.random.default_rng(seed)
    pixels = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    pixels[:] = rng.integers(40, 90, 3)
    x, y, w, h = box
    pixels[y:y + h, x:x + w] = rng.integers(150, 256, 3)
    return pixels


def _save_jpeg(path, pixels, mode="RGB"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image = Image.fromarray(pixels)
    if mode != "RGB":
        image = image.convert(mode)
    image.save(path, format="JPEG", quality=90)


def _captions(seed: int, count: int):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(_WORDS, size=int(rng.integers(3, 7)))) for _ in range(count)]


def _attngan_captions_pickle(train_caps, test_caps):
    """AttnGAN's captions.pickle: word indices in first-seen order, 0 = '<end>'."""
    ixtoword, wordtoix = {0: "<end>"}, {"<end>": 0}
    for caption in train_caps + test_caps:
        for word in caption.split():
            if word not in wordtoix:
                wordtoix[word] = len(ixtoword)
                ixtoword[len(ixtoword)] = word
    encode = lambda caps: [[wordtoix[w] for w in c.split()] for c in caps]  # noqa: E731
    return py2_pickle([encode(train_caps), encode(test_caps), ixtoword, wordtoix])


# --- CUB (AttnGAN birds/ layout). -------------------------------------------------------
CUB_CLASSES = ["001.Black_footed_Albatross", "002.Laysan_Albatross", "003.Sooty_Albatross"]
# (class index, image stem, bbox x y w h); classes 1-2 train, 3 test, as AttnGAN splits
# by class.
CUB_IMAGES = [
    (0, "Black_Footed_Albatross_0001_1", (4, 3, 10, 8)),
    (0, "Black_Footed_Albatross_0002_2", (20, 10, 10, 12)),
    (1, "Laysan_Albatross_0003_3", (0, 0, 6, 5)),
    (1, "Laysan_Albatross_0004_4", (8, 6, 16, 12)),
    (2, "Sooty_Albatross_0005_5", (12, 2, 14, 6)),
    (2, "Sooty_Albatross_0006_6", (3, 12, 9, 10)),
]
CUB_TRAIN = [0, 1, 2, 3]
CUB_TEST = [4, 5]


def make_cub(root):
    images_txt, boxes_txt, names = [], [], []
    caption_lists = {}
    for image_id, (cls, stem, box) in enumerate(CUB_IMAGES, 1):
        name = f"{CUB_CLASSES[cls]}/{stem}"
        names.append(name)
        _save_jpeg(os.path.join(root, "CUB_200_2011", "images", name + ".jpg"),
                   _image(image_id, box))
        images_txt.append(f"{image_id} {name}.jpg")
        boxes_txt.append(f"{image_id} " + " ".join(f"{v:.1f}" for v in box))
        captions = _captions(100 + image_id, 11)
        caption_lists[name] = captions[:10]
        # Reference quirks to exercise: a blank line, the mis-decoded pair, an 11th caption.
        lines = captions[:3] + [""] + [captions[3] + "\ufffd\ufffdbird"] + captions[4:]
        caption_lists[name][3] = captions[3] + " bird"
        _write(os.path.join(root, "text", name + ".txt"), "\n".join(lines) + "\n", "w")
    _write(os.path.join(root, "CUB_200_2011", "images.txt"), "\n".join(images_txt) + "\n", "w")
    _write(os.path.join(root, "CUB_200_2011", "bounding_boxes.txt"),
           "\n".join(boxes_txt) + "\n", "w")
    for split, indices in (("train", CUB_TRAIN), ("test", CUB_TEST)):
        _write(os.path.join(root, split, "filenames.pickle"),
               py2_pickle([names[i].encode() for i in indices]))
        _write(os.path.join(root, split, "class_info.pickle"),
               py2_pickle([CUB_IMAGES[i][0] + 1 for i in indices]))
    train_caps = [c for i in CUB_TRAIN for c in caption_lists[names[i]]]
    test_caps = [c for i in CUB_TEST for c in caption_lists[names[i]]]
    _write(os.path.join(root, "captions.pickle"), _attngan_captions_pickle(train_caps, test_caps))


# --- COCO. ------------------------------------------------------------------------------
COCO_TRAIN_IDS = [9, 25, 30]
COCO_VAL_IDS = [42, 73]


def _coco_name(folder, image_id):
    return f"COCO_{folder}_{image_id:012d}"


def make_coco_attngan(root):
    train, test = [], []
    for folder, ids, names in (("train2014", COCO_TRAIN_IDS, train),
                               ("val2014", COCO_VAL_IDS, test)):
        for image_id in ids:
            name = _coco_name(folder, image_id)
            names.append(name)
            _save_jpeg(os.path.join(root, "images", name + ".jpg"),
                       _image(image_id, (5, 5, 12, 10)))
            _write(os.path.join(root, "text", name + ".txt"),
                   "\n".join(_captions(image_id, 5)) + "\n", "w")
    _write(os.path.join(root, "train", "filenames.pickle"), py2_pickle([n.encode() for n in train]))
    _write(os.path.join(root, "test", "filenames.pickle"), py2_pickle([n.encode() for n in test]))
    caps = lambda names: [c for n in names for c in _captions(int(n[-12:]), 5)]  # noqa: E731
    _write(os.path.join(root, "captions.pickle"), _attngan_captions_pickle(caps(train), caps(test)))


def make_coco_official(root):
    annotation_id = 1
    for folder, ids in (("train2014", COCO_TRAIN_IDS), ("val2014", COCO_VAL_IDS)):
        images, annotations = [], []
        for image_id in ids:
            file_name = _coco_name(folder, image_id) + ".jpg"
            # One grayscale image: the builder must store it as RGB.
            mode = "L" if image_id == COCO_TRAIN_IDS[1] else "RGB"
            _save_jpeg(os.path.join(root, folder, file_name), _image(image_id, (5, 5, 12, 10)),
                       mode)
            images.append({"id": image_id, "file_name": file_name, "width": WIDTH,
                           "height": HEIGHT})
        # Captions interleaved across images, and one image with 6: keeps its first 5.
        for k in range(6):
            for image_id in ids:
                if k == 5 and image_id != ids[0]:
                    continue
                annotations.append({"id": annotation_id, "image_id": image_id,
                                    "caption": _captions(image_id, 6)[k].capitalize() + "."})
                annotation_id += 1
        _write(os.path.join(root, "annotations", f"captions_{folder}.json"),
               json.dumps({"images": images, "annotations": annotations}, indent=1), "w")


def main():
    for name, make in (("cub", make_cub), ("coco_attngan", make_coco_attngan),
                       ("coco_official", make_coco_official)):
        root = os.path.join(HERE, name)
        shutil.rmtree(root, ignore_errors=True)
        make(root)
        print("wrote", root)


if __name__ == "__main__":
    main()
