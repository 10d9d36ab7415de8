"""The data path measured: clips/s one loader worker delivers, and how far that is from decoding alone.

    python bench/data_throughput.py --out results/reference/data_throughput.csv

For frame folders (JPEG, 4:2:0 as ffmpeg extracts them) and video files (mp4/H.264 and webm/VP9, 4:2:0,
a key frame every 12 frames, 12 fps), at the paper's size (frames 256 x 256, short side 256 -> 224
crops) and at the default profile's (64 x 64 -> 48), for 8 and 16 frames, training and test transforms:

* ``decode_ms``: decoding the frames the item samples, nothing else (frames: PIL open + decode of each
  frame at full size; video: :class:`tinlab.data.video.VideoReader`, i.e. open, packet index, seek,
  decode, conversion to RGB);
* ``decode_native_ms``: the same with the decoder the dataset uses (frames: simplejpeg, which decodes
  straight into a numpy array; video: the same as decode_ms);
* ``read_ms``: the dataset's own read of those frames (file reads, decoding, reduced size where the
  crop allows it);
* ``item_ms``: ``dataset[i]``, read + transforms, uint8 out (the default); ``item_float_ms`` the same
  with normalisation to float32 in the worker instead of on the device (``build_transforms(uint8=False)``);
* ``ratio`` = item_ms / decode_ms (target: <= 1.25 for training and test at the paper's size);
  ``ratio_native`` = item_ms / decode_native_ms (the pipeline's cost over its own decoder);
* ``clips_per_s``: 1000 / item_ms, one process, one thread, as a loader worker runs;
* ``loader_clips_per_s``: through a DataLoader with one worker process and batches of 8 (collation and
  the hand-over to the main process included; worker start-up excluded), and ``loader_ratio`` =
  (1000 / loader_clips_per_s) / decode_ms.

Rounds are interleaved over the configurations (machine noise hits all alike); each figure is the
median over rounds of the mean per clip. The data are synthetic (rendered objects on textured,
noisy backgrounds: harder to compress than camera video, so video decoding here is slower than on
real footage of the same size); ``bytes_per_frame`` says how large the files are.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import ConcatDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tinlab.data import VideoReader, build_dataloader, build_transforms, write_video  # noqa: E402
from tinlab.data.dataset import VideoFileDataset, VideoFrameDataset  # noqa: E402
from tinlab.data.synthetic import SyntheticParams, dataset_video  # noqa: E402
from tinlab.utils.io import write_csv  # noqa: E402
from tinlab.utils.provenance import provenance  # noqa: E402

SIZES = {"paper": (256, 224), "default": (64, 48)}  # frame side, crop
FORMATS = ("frames", "mp4", "webm")


def write_dataset(root: Path, side: int, videos: int, frames: int) -> dict[str, int]:
    """``videos`` rendered videos of ``frames`` frames as JPEG folders, mp4 and webm; bytes per frame."""
    p = SyntheticParams("synthetic-motion", size=side, min_frames=frames, max_frames=frames)
    lines, size = {f: [] for f in FORMATS}, {f: 0 for f in FORMATS}
    for i in range(videos):
        vid, label, pixels = dataset_video(p, "val", i)
        folder = root / "frames" / vid
        folder.mkdir(parents=True)
        for j, f in enumerate(pixels, 1):
            Image.fromarray(f).save(folder / f"{j:05d}.jpg", quality=90)  # 4:2:0, as ffmpeg writes them
            size["frames"] += (folder / f"{j:05d}.jpg").stat().st_size
        lines["frames"].append(f"{vid} {len(pixels)} {label}")
        for fmt in ("mp4", "webm"):
            path = root / "videos" / f"{vid}.{fmt}"
            path.parent.mkdir(exist_ok=True)
            write_video(path, pixels)
            size[fmt] += path.stat().st_size
            lines[fmt].append(f"{vid}.{fmt} {len(pixels)} {label}")
    for fmt in FORMATS:
        (root / f"{fmt}.txt").write_text("\n".join(lines[fmt]) + "\n")
    return {f: size[f] // (videos * frames) for f in FORMATS}


def bare_decode(ds, index: int) -> None:
    """Decode the frames item ``index`` samples, at full size, and nothing else."""
    rec = ds.records[index]
    if isinstance(ds, VideoFrameDataset):
        for i in np.unique(ds.indices(index)):
            with Image.open(ds.frame_path(rec, int(i))) as img:
                img.load()
                if img.mode != "RGB":
                    img.convert("RGB")
    else:
        with VideoReader(ds.video_path(rec)) as video:
            video.frames(np.unique(ds.indices(index, video.num_frames)))


def native_decode(ds, index: int) -> None:
    """Decode the frames item ``index`` samples at full size with the dataset's own decoder."""
    rec = ds.records[index]
    if isinstance(ds, VideoFrameDataset):
        import simplejpeg

        for i in np.unique(ds.indices(index)):
            simplejpeg.decode_jpeg(ds.frame_path(rec, int(i)).read_bytes(), colorspace="RGB")
    else:
        bare_decode(ds, index)


def read_only(ds, index: int) -> None:
    ds._read(index, ds.records[index])


def per_clip_ms(fn, ds) -> float:
    start = time.perf_counter()
    for i in range(len(ds)):
        fn(ds, i)
    return (time.perf_counter() - start) * 1000 / len(ds)


def loader_clips_per_s(ds, repeats: int = 5) -> float:
    loader = build_dataloader(ConcatDataset([ds] * repeats), batch_size=8, train=False, num_workers=1,
                              pin_memory=False)
    batches = iter(loader)
    next(batches)  # worker start-up is not the steady state
    start, n = time.perf_counter(), 0
    for clips, _ in batches:
        n += len(clips)
    return n / (time.perf_counter() - start)


def workers_needed(gpu: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """Loader workers per GPU = ceil(the GPU's training clips/s / one worker's clips/s), per format."""
    rows = []
    for _, step in gpu[(gpu.measure == "train") & (gpu.backbone == "resnet50")].iterrows():
        for _, data in paper[(paper["mode"] == "train") & (paper.frames == step.frames)].iterrows():
            rows.append({"model": step.model, "frames": step.frames, "format": data["format"],
                         "gpu_train_clips_per_s": step.clips_per_s, "worker_clips_per_s": data.loader_clips_per_s,
                         "workers": int(np.ceil(step.clips_per_s / data.loader_clips_per_s))})
    return pd.DataFrame(rows)


def av_version() -> str:
    import av

    return av.__version__


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("results/reference/data_throughput.csv"))
    parser.add_argument("--videos", type=int, default=8, help="videos per dataset")
    parser.add_argument("--frames", type=int, default=48, help="frames per video")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--segments", nargs="+", type=int, default=[8, 16])
    parser.add_argument("--gpu", type=Path, default=None,
                        help="models.csv of `make gpu-check`: print the loader workers each model's training "
                             "step needs per GPU (its train clips/s over one worker's)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as in a DataLoader worker
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        configs = []
        for size in args.sizes:
            side, crop = SIZES[size]
            root = Path(tmp) / size
            bytes_per_frame = write_dataset(root, side, args.videos, args.frames)
            for fmt in FORMATS:
                for t in args.segments:
                    for mode in ("train", "test"):
                        kw = dict(num_segments=t, train=mode == "train", num_classes=12)
                        sets = {}
                        for uint8 in (True, False):
                            transform = build_transforms(mode == "train", crop, flip=False, uint8=uint8)
                            sets[uint8] = (VideoFrameDataset(root, f"{fmt}.txt", template="{:05d}.jpg", transform=transform, **kw)
                                           if fmt == "frames" else
                                           VideoFileDataset(root, f"{fmt}.txt", transform=transform, **kw))
                        configs.append((dict(size=size, frame_side=side, crop=crop, format=fmt, frames=t, mode=mode,
                                             bytes_per_frame=bytes_per_frame[fmt]), sets))
        times = {i: {"decode": [], "native": [], "read": [], "item": [], "item_float": []} for i in range(len(configs))}
        for r in range(args.rounds + 1):  # round 0 warms caches up and is dropped
            for i, (_, sets) in enumerate(configs):
                results = {"decode": per_clip_ms(bare_decode, sets[True]), "native": per_clip_ms(native_decode, sets[True]),
                           "read": per_clip_ms(read_only, sets[True]),
                           "item": per_clip_ms(lambda d, j: d[j], sets[True]),
                           "item_float": per_clip_ms(lambda d, j: d[j], sets[False])}
                if r:
                    for k, v in results.items():
                        times[i][k].append(v)
            print(f"round {r} done", file=sys.stderr)
        for i, (meta, sets) in enumerate(configs):
            med = {k: statistics.median(v) for k, v in times[i].items()}
            loader = loader_clips_per_s(sets[True])
            rows.append({**meta, "decode_ms": med["decode"], "decode_native_ms": med["native"], "read_ms": med["read"],
                         "item_ms": med["item"], "item_float_ms": med["item_float"],
                         "ratio": med["item"] / med["decode"], "ratio_native": med["item"] / med["native"],
                         "clips_per_s": 1000 / med["item"], "loader_clips_per_s": loader,
                         "loader_ratio": 1000 / loader / med["decode"]})
    table = pd.DataFrame(rows).round(3)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_csv(table, args.out, {**provenance({"rounds": args.rounds, "videos": args.videos,
                                               "frames_per_video": args.frames, "threads": 1}),
                                "av": av_version()})
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.to_string(index=False))
    paper = table[table["size"] == "paper"]
    if args.gpu is not None:
        print(workers_needed(pd.read_csv(args.gpu), paper).to_string(index=False))
    if not paper.empty:
        worst = paper.loc[paper.ratio.idxmax()]
        print(f"\nworst ratio at the paper's size: {worst.ratio:.2f} ({worst['format']}, {worst['mode']}, "
              f"T={worst.frames}); target <= 1.25: {'met' if worst.ratio <= 1.25 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
