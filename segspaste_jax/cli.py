"""`segspaste-jax`: the demo on the embedded photo, and pasting SEGS files.

    segspaste-jax demo [--out demo.png] [--feather 5] [--alpha 255]
                       [--feather-mode relative --grow 0]
    segspaste-jax paste --image FILE|DIR --segs FILE.npz --out FILE|DIR
                        [--skip-existing]
    segspaste-jax comfyui install COMFYUI_DIR

Errors in the input end the program with status 2 and one line on stderr,
`segspaste-jax: error: ...`, never a traceback. Compiled programs are kept
in JAX's persistent compilation cache (see `segspaste_jax._src.compile_cache`:
`SEGSPASTE_JAX_COMPILE_CACHE=off` turns it off), so a second run does not
compile again.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import jax
import numpy as np
from PIL import Image, ImageDraw, ImageFont

import segspaste_jax
from segspaste_jax import (__version__, load_segs, sample, save_segs,
                           segs_paste, stream_segs_paste)
from segspaste_jax._src import compile_cache, validate

PROG = "segspaste-jax"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff",
                  ".gif")
DEFAULT_CHUNK = 16


class _UsageError(Exception):
  """A command-line mistake, reported as one line."""


class _Parser(argparse.ArgumentParser):
  """An ArgumentParser whose errors are one line, without the usage text."""

  def error(self, message):
    raise _UsageError(message)


def _in_range(low, high, kinds: tuple, what: str):
  """An argparse type: `what` in `[low, high]`, read as the first of
  `kinds` that takes the text."""
  def parse(text: str):
    value = None
    for kind in kinds:
      try:
        value = kind(text)
        break
      except ValueError:
        continue
    if value is None or not low <= value <= high:
      raise argparse.ArgumentTypeError(
          f"expected {what} in {low:g}..{high:g}, got {text!r}")
    return value
  return parse


def _int_in(low: int, high: int):
  """An argparse type: an integer in `[low, high]`."""
  return _in_range(low, high, (int,), "an integer")


def _number_in(low: float, high: float):
  """An argparse type: a number in `[low, high]`, an int where the text is
  one (the node's modes take integer feathers only)."""
  return _in_range(low, high, (int, float), "a number")


# ----------------------------------------------------------------------------
# Images on disk: float32 [0, 1], RGB, RGBA or L as stored.

def _frame_paths(path: str, name: str) -> list[Path]:
  """One image file, or the images in a folder sorted by name."""
  p = Path(path)
  if p.is_dir():
    files = sorted((f for f in p.iterdir()
                    if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES),
                   key=lambda f: f.name)
    if not files:
      raise ValueError(f"{name}: no images ({', '.join(IMAGE_SUFFIXES)}) in "
                       f"folder {p}")
    return files
  if not p.is_file():
    raise ValueError(f"{name}: no such file or folder: {p}")
  return [p]


def _mode(im: Image.Image) -> str:
  """RGB, RGBA and L are kept; other modes become RGBA or RGB."""
  if im.mode in ("RGB", "RGBA", "L"):
    return im.mode
  return "RGBA" if "A" in im.getbands() or "transparency" in im.info else "RGB"


def _frames_shape(paths: list[Path], name: str) -> tuple[int, int, int, int]:
  """`(N, H, W, C)` of image files that must share size and mode.

  Reads only the headers.
  """
  first = None
  for p in paths:
    with Image.open(p) as im:
      shape = (im.height, im.width, _mode(im))
    if first is None:
      first = shape
    elif shape != first:
      raise ValueError(f"{name}: {p.name} is {shape[1]}x{shape[0]} "
                       f"{shape[2]}, but {paths[0].name} is {first[1]}x"
                       f"{first[0]} {first[2]}; frames must match")
  h, w, mode = first
  return len(paths), h, w, len(mode)


def _read_frame(path: Path) -> np.ndarray:
  """`[H, W, C]` float32 in [0, 1] from an image file."""
  with Image.open(path) as im:
    frame = np.asarray(im.convert(_mode(im)), np.float32) / 255
  return frame[..., None] if frame.ndim == 2 else frame


def _to_image(frame: np.ndarray) -> Image.Image:
  """`[H, W, C]` float in [0, 1] to an 8-bit Pillow image, rounding."""
  pixels = np.round(np.clip(frame, 0, 1) * 255).astype(np.uint8)
  return Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)


def _out_paths(frames: list[Path], image_arg: str, out_arg: str) -> list[Path]:
  """Output files: a folder of PNGs for a folder, else one file."""
  out = Path(out_arg)
  if Path(image_arg).is_dir():
    if out.exists() and not out.is_dir():
      raise ValueError(f"--out: {out} is a file; a folder of frames needs an "
                       "output folder")
    if out.exists() and out.resolve() == Path(image_arg).resolve():
      raise ValueError("--out: is the input folder; choose another folder so "
                       "the frames are not overwritten")
    paths = [out / (f.stem + ".png") for f in frames]
    if len(set(paths)) != len(paths):
      raise ValueError(f"--image: two frames in {image_arg} share a name "
                       "(e.g. a.png and a.jpg); their outputs would collide")
    return paths
  if out.is_dir():
    return [out / (frames[0].stem + ".png")]
  return [out]


# ----------------------------------------------------------------------------
# Commands.

def _cmd_paste(args) -> None:
  segs = load_segs(args.segs)
  frames = _frame_paths(args.image, "--image")
  out_paths = _out_paths(frames, args.image, args.out)
  n, h, w, c = _frames_shape(frames, "--image")
  ref_frames = None
  if args.ref is not None:
    ref_frames = _frame_paths(args.ref, "--ref")
    # ref_image_opt's rules, on the files' headers before any is read
    validate.check_ref_shape(_frames_shape(ref_frames, "--ref"), (n, h, w, c),
                             "--ref")
    ref_frames = ref_frames[:n]

  # --skip-existing: a frame is finished iff its output file exists (files
  # are written whole or not at all); the rest are pasted with their global
  # frame numbers, for the whole sequence's N frames
  todo = list(range(n))
  if args.skip_existing:
    todo = [i for i in todo if not out_paths[i].is_file()]
  skipped = n - len(todo)
  where = out_paths[0] if n == 1 else out_paths[0].parent
  if not todo:
    there = (f"{where} already exists" if n == 1 and not
             Path(args.image).is_dir() else
             f"all {_count(n, 'frame')} already in {where}")
    print(f"{there} (--skip-existing); nothing to paste")
    return

  started = time.perf_counter()
  ref = None
  if ref_frames is not None:  # one reference frame serves every frame
    ref = (_read_frame(ref_frames[0])[None] if len(ref_frames) == 1
           else map(_read_frame, (ref_frames[i] for i in todo)))
  # Frames are read, pasted and written a chunk at a time; a bar on a
  # terminal when there is more than one chunk.
  chunks = stream_segs_paste(
      map(_read_frame, (frames[i] for i in todo)), segs,
      feather=args.feather, alpha=args.alpha, ref_image_opt=ref,
      feather_mode=args.feather_mode, rgba_mode=args.rgba_mode,
      grow=args.grow, color_match=args.color_match,
      color_strength=args.color_strength,
      num_frames=n, frame_indices=todo if skipped else None,
      chunk=args.chunk,
      progress=len(todo) > args.chunk and sys.stderr.isatty())
  done = 0
  try:
    for block in chunks:
      out_paths[0].parent.mkdir(parents=True, exist_ok=True)
      for frame in block:
        _save_whole(_to_image(frame), out_paths[todo[done]])
        done += 1
  except KeyboardInterrupt:
    more = (f" more of {_count(n, 'frame')} ({skipped + done} done)"
            if skipped else f" of {_count(n, 'frame')}")
    print(f"{PROG}: interrupted: wrote {done}{more} to "
          f"{out_paths[0].parent}; rerun with --skip-existing to finish",
          file=sys.stderr)
    raise
  elapsed = time.perf_counter() - started

  into = (f"{len(todo)} of {_count(n, 'frame')} ({skipped} already there, "
          f"skipped)" if skipped else _count(n, 'frame'))
  print(f"pasted {_count(len(segs[1]), 'segment')} into {into} of {w}x{h} "
        f"({c} channels), feather {args.feather}, alpha {args.alpha}, in "
        f"{elapsed:.2f} s; wrote {where}")


def _save_whole(image: Image.Image, path: Path) -> None:
  """Writes a PNG whole or not at all: a temporary name in the same folder,
  then a rename (an interrupted run leaves no truncated file behind)."""
  partial = path.with_name(f".{path.name}.partial")
  try:
    image.save(partial, format="PNG")
    os.replace(partial, path)
  finally:
    if partial.exists():
      partial.unlink()


def _count(number: int, noun: str) -> str:
  return f"{number} {noun}{'s' * (number != 1)}"


def _label_font(size: int):
  try:
    return ImageFont.load_default(size=size)
  except (TypeError, OSError):  # Pillow without FreeType: the bitmap font
    return ImageFont.load_default()


def _caption(draw: ImageDraw.ImageDraw, xy, text: str, font) -> None:
  left, top, right, bottom = draw.textbbox(xy, text, font=font)
  draw.rectangle((left - 4, top - 3, right + 4, bottom + 3), fill=(0, 0, 0))
  draw.text(xy, text, fill=(255, 255, 255), font=font)


def _demo_panel(image, segs, out, feather: int, alpha,
                feather_mode: str = "node", grow=0.0) -> Image.Image:
  """Before | masks | after, side by side, as an RGB Pillow image.

  Args:
    image: `[1, H, W, 3]` float in [0, 1], the input.
    segs: the SEGS pasted into it.
    out: `[1, H, W, 3]` float in [0, 1], the result.
    feather: the feather used, for the masks panel.
    alpha: the alpha used, for the masks panel.
    feather_mode: the feather mode used, for the masks panel.
    grow: the grow used (feather_mode "relative"), for the masks panel.

  Returns:
    A `3W x H` RGB image. The middle panel shows the blend weights the paste
    used (feathered masks times `alpha / 255`, white is 1), with each crop
    region outlined and labelled.
  """
  size, items = segs
  ones = [s._replace(cropped_image=np.ones_like(s.cropped_image))
          for s in items]
  weights = np.asarray(segs_paste(np.zeros_like(image), (size, ones),
                                  feather=feather, alpha=alpha,
                                  feather_mode=feather_mode, grow=grow))
  h, w = image.shape[1:3]
  panel = Image.new("RGB", (3 * w, h))
  for k, frame in enumerate((image[0], weights[0], np.asarray(out)[0])):
    panel.paste(_to_image(frame), (k * w, 0))

  draw = ImageDraw.Draw(panel)
  font, small = _label_font(max(12, h // 24)), _label_font(max(10, h // 36))
  for seg in items:
    x1, y1, x2, y2 = seg.crop_region
    draw.rectangle((w + x1, y1, w + x2 - 1, y2 - 1), outline=(255, 190, 0),
                   width=2)
    _caption(draw, (w + x1 + 6, y1 + 6), seg.label, small)
  for k, text in enumerate(("before", f"masks (feather {feather}, alpha "
                                      f"{alpha})", "after")):
    _caption(draw, (k * w + 10, h - h // 14), text, font)
  return panel


def _cmd_demo(args) -> None:
  image = sample.load_sample_image()
  segs = sample.sample_segs(image)
  _, h, w, _ = image.shape
  print(f"sample photo {w}x{h}, {len(segs[1])} segments, feather "
        f"{args.feather}, alpha {args.alpha}:")
  for seg in segs[1]:
    x1, y1, x2, y2 = seg.crop_region
    print(f"  {seg.label:<7} crop_region {str(seg.crop_region):<22} "
          f"{x2 - x1}x{y2 - y1} px, confidence {seg.confidence:.2f}")

  times = []
  for _ in range(2):
    started = time.perf_counter()
    out = segs_paste(image, segs, feather=args.feather, alpha=args.alpha,
                     feather_mode=args.feather_mode, grow=args.grow,
                     color_match=args.color_match,
                     color_strength=args.color_strength)
    out.block_until_ready()
    times.append(time.perf_counter() - started)
  device = jax.devices()[0]
  kind = device.device_kind
  where = device.platform + ("" if kind == device.platform else f" ({kind})")
  print(f"segs_paste on {where}: first call "
        f"{times[0] * 1e3:.1f} ms (includes compiling), warm call "
        f"{times[1] * 1e3:.1f} ms")

  if args.save_segs:
    save_segs(args.save_segs, segs)
    print(f"wrote the sample SEGS to {args.save_segs}")
  if args.save_image:
    _to_image(image[0]).save(args.save_image)
    print(f"wrote the sample photo to {args.save_image}")
  _demo_panel(image, segs, out, args.feather, args.alpha,
              args.feather_mode, args.grow).save(args.out)
  print(f"wrote {args.out} ({3 * w}x{h}: before | masks | after)")


# ----------------------------------------------------------------------------
# `comfyui install`: a loader folder in ComfyUI's custom_nodes/.

LOADER_NAME = "comfyui_segspaste_jax"
LOADER_MARKER = ".segspaste-jax-loader"

def _comfyui_folder(path: str) -> Path:
  """The ComfyUI folder `path`, checked: it holds `main.py` and
  `custom_nodes/`."""
  root = Path(path).expanduser()
  if not root.is_dir():
    raise ValueError(f"comfyui install: no such folder: {root}")
  if (root / "main.py").is_file() and (root / "custom_nodes").is_dir():
    return root
  if root.name == "custom_nodes" and (root.parent / "main.py").is_file():
    hint = f"; pass the ComfyUI folder above it, {root.parent}"
  elif (root / "ComfyUI" / "main.py").is_file():
    hint = f"; pass the ComfyUI folder inside it, {root / 'ComfyUI'}"
  else:
    hint = ""
  raise ValueError(f"comfyui install: {root} is not a ComfyUI folder (it "
                   f"has no main.py and custom_nodes/){hint}")


def _source_checkout() -> str | None:
  """The checkout this segspaste_jax runs from, or None when installed."""
  root = Path(segspaste_jax.__file__).resolve().parent.parent
  project = root / "pyproject.toml"
  if project.is_file() and 'name = "segspaste-jax"' in project.read_text(
      encoding="utf-8"):
    return str(root)
  return None


def _pack_folder() -> Path | None:
  """The node pack folder this segspaste_jax ships: inside the installed
  package (the wheel holds it), or the checkout's `comfyui_segspaste_jax/`."""
  inside = Path(segspaste_jax.__file__).resolve().parent / "_comfyui_pack"
  if (inside / "__init__.py").is_file():
    return inside
  source = _source_checkout()
  if source is not None and (Path(source) / LOADER_NAME /
                             "__init__.py").is_file():
    return Path(source) / LOADER_NAME
  return None


def _cmd_comfyui_install(args) -> None:
  root = _comfyui_folder(args.comfyui_dir)
  target = root / "custom_nodes" / LOADER_NAME
  marker = target / LOADER_MARKER
  if target.is_symlink() or (target.exists() and not target.is_dir()):
    raise ValueError(f"comfyui install: {target} exists and is not a folder "
                     "written by segspaste-jax; remove it first")
  if target.exists() and not marker.is_file():
    raise ValueError(f"comfyui install: {target} exists and was not written "
                     f"by segspaste-jax (no {LOADER_MARKER} in it); remove "
                     "it or move it away first")
  pack = _pack_folder()
  if pack is None:
    raise ValueError("comfyui install: this segspaste_jax has no node pack "
                     "folder (neither in the package nor in a checkout); "
                     "reinstall it")
  updating = target.exists()
  source = _source_checkout()
  target.mkdir(parents=True, exist_ok=True)
  # the marker: which version wrote the folder, and the checkout the loader
  # imports the library from where ComfyUI's Python lacks it
  marker.write_text(f"segspaste_jax {__version__}\n"
                    + (f"source {source}\n" if source else ""),
                    encoding="utf-8")
  # the pack's own loader, as it is: one loader on every route
  (target / "__init__.py").write_bytes((pack / "__init__.py").read_bytes())
  workflows = sorted((pack / "example_workflows").glob("*.json"))
  for workflow in workflows:
    (target / "example_workflows").mkdir(exist_ok=True)
    (target / "example_workflows" / workflow.name).write_bytes(
        workflow.read_bytes())
  copied = len(workflows)
  extra = f" and {_count(copied, 'example workflow')}" if copied else ""
  print(f"{'updated' if updating else 'wrote'} {target} (the node pack's "
        f"loader{extra}); restart ComfyUI to load SEGSPaste (JAX)")
  print(f"ComfyUI's Python needs segspaste_jax and JAX (this command ran on "
        f"{sys.executable})")


def _parser() -> argparse.ArgumentParser:
  parser = _Parser(
      prog=PROG,
      description="The ComfyUI Impact Pack's SEGSPaste node in JAX: paste "
                  "SEGS (re-detailed crops with soft masks) into images.")
  parser.add_argument("--version", action="version",
                      version=f"%(prog)s {__version__}")
  commands = parser.add_subparsers(dest="command", required=True,
                                   metavar="{demo,paste,comfyui}")

  def common(p):
    p.add_argument("--feather", type=_number_in(0, 100), default=5,
                   metavar="N",
                   help="mask blur, kernel 2N+1, sigma 10 (0..100, default "
                        "5); with --feather-mode relative, the ramp's width "
                        "in per cent of the square root of the mask's area")
    p.add_argument("--alpha", type=_int_in(0, 255), default=255, metavar="N",
                   help="opacity of the pasted crops (0..255, default 255)")
    p.add_argument("--feather-mode", choices=validate.FEATHER_MODES,
                   default="node",
                   help="node: the node's feathering (default); soft_edges: "
                        "the same, faded to 0 at the crop border (no seam); "
                        "relative: a ramp sized to each mask, 0 at the crop "
                        "border")
    p.add_argument("--grow", type=_number_in(-100, 100), default=0,
                   metavar="P",
                   help="with --feather-mode relative: move the ramp's 50%% "
                        "level outward (P > 0) or inward off the mask's "
                        "edge, P per cent of the square root of its area "
                        "(-100..100, default 0)")
    p.add_argument("--rgba-mode", choices=validate.RGBA_MODES,
                   default="composite",
                   help="RGBA onto RGBA: composite alpha as today's node "
                        "(default) or legacy: blend it like colour")
    p.add_argument("--color-match", choices=validate.COLOR_MATCHES,
                   default="none",
                   help="match each crop's colours to the pixels it "
                        "replaces: none (the node's picture, default), "
                        "lowfreq, rct or mkl")
    p.add_argument("--color-strength", type=_number_in(0, 1), default=1.0,
                   metavar="S",
                   help="how far --color-match moves the colours (0..1, "
                        "default 1)")

  demo = commands.add_parser(
      "demo", help="paste sample SEGS into the embedded photo",
      description="Builds SEGS over the flag, face, mission patch and helmet "
                  "of the embedded photo (crops re-detailed with visible "
                  "effects, soft elliptical masks), pastes them and writes a "
                  "before | masks | after panel. Prints the timings of a "
                  "first (compiling) and a warm call.")
  demo.add_argument("--out", default="demo.png", metavar="PATH",
                    help="the PNG panel to write (default demo.png)")
  common(demo)
  demo.add_argument("--save-segs", metavar="FILE",
                    help="also write the sample SEGS to FILE (.npz), for "
                         "`paste --segs`")
  demo.add_argument("--save-image", metavar="FILE",
                    help="also write the untouched sample photo to FILE")
  demo.set_defaults(run=_cmd_demo)

  paste_cmd = commands.add_parser(
      "paste", help="paste a SEGS file into an image or a folder of frames",
      description="Pastes the SEGS in a .npz file (see save_segs) into one "
                  "image or into every frame of a folder (sorted by name; "
                  "png, jpg, webp, ...; RGB, RGBA and L kept) and writes "
                  "8-bit PNGs. Frame i takes frame i of each SEG's crop.")
  paste_cmd.add_argument("--image", required=True, metavar="FILE|DIR",
                         help="an image file, or a folder of frames")
  paste_cmd.add_argument("--segs", required=True, metavar="FILE",
                         help="SEGS file written by save_segs (.npz)")
  paste_cmd.add_argument("--ref", metavar="FILE|DIR",
                         help="take the pasted pixels from this image (or "
                              "folder of frames) at each crop region instead "
                              "of the crops, as ref_image_opt")
  paste_cmd.add_argument("--out", required=True, metavar="FILE|DIR",
                         help="output file for one image; output folder "
                              "(created) for a folder of frames")
  common(paste_cmd)
  paste_cmd.add_argument("--chunk", type=_int_in(1, 1 << 20),
                         default=DEFAULT_CHUNK, metavar="N",
                         help=f"frames pasted per batch (default "
                              f"{DEFAULT_CHUNK})")
  paste_cmd.add_argument("--skip-existing", action="store_true",
                         help="resume a stopped run: leave the frames whose "
                              "output file already exists (outputs are "
                              "written whole or not at all) and paste only "
                              "the others, each with its own frame number "
                              "(frame i still takes frame i of each SEG's "
                              "crop and mask)")
  paste_cmd.set_defaults(run=_cmd_paste)

  comfyui = commands.add_parser(
      "comfyui", help="set up the ComfyUI nodes",
      description="Sets up SEGSPaste (JAX), the ComfyUI nodes, in a ComfyUI "
                  "folder.")
  comfyui_commands = comfyui.add_subparsers(dest="comfyui_command",
                                            required=True, metavar="{install}")
  install = comfyui_commands.add_parser(
      "install", help="write a loader folder into ComfyUI's custom_nodes/",
      description=f"Writes custom_nodes/{LOADER_NAME}/ into a ComfyUI "
                  "folder: the node pack's loader for the nodes of the "
                  "segspaste_jax package, and its example workflows. "
                  "Run it again to update the loader; it never replaces a "
                  "folder it did not write. The Python that runs ComfyUI "
                  "needs segspaste_jax installed.")
  install.add_argument("comfyui_dir", metavar="COMFYUI_DIR",
                       help="the ComfyUI folder (holding main.py and "
                            "custom_nodes/)")
  install.set_defaults(run=_cmd_comfyui_install)
  return parser


def _show_warning(message, category, filename, lineno, file=None, line=None):
  del category, filename, lineno, line
  print(f"{PROG}: warning: {message}", file=file or sys.stderr)


def main(argv: list[str] | None = None) -> int:
  """Runs the command line.

  Args:
    argv: the arguments without the program name; default `sys.argv[1:]`.

  Returns:
    The exit status: 0 on success, 2 on bad input (one line on stderr).
  """
  try:
    args = _parser().parse_args(argv)
    compile_cache.enable()
    with warnings.catch_warnings():
      warnings.showwarning = _show_warning
      args.run(args)
  except _UsageError as e:
    return _fail(f"{e} (see {PROG} --help)")
  except OSError as e:
    return _fail(f"{e.filename}: {e.strerror}" if e.filename and e.strerror
                 else str(e))
  except (ValueError, TypeError) as e:
    return _fail(str(e))
  except KeyboardInterrupt:
    return 130
  return 0


def _fail(message: str) -> int:
  print(f"{PROG}: error: {' '.join(message.split())}", file=sys.stderr)
  return 2


if __name__ == "__main__":
  sys.exit(main())
