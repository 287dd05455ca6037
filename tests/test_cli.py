"""The `segspaste-jax` command line: demo, paste, help and errors."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from segspaste_jax import SEG, cli, save_segs, segs_paste
from segspaste_jax.sample import load_sample_image, sample_segs, soft_ellipse

ROUNDING = 0.5 / 255 + 1e-6  # PNGs hold the result rounded to 8 bits


def _read(path):
  pixels = np.asarray(Image.open(path), np.float32) / 255
  return pixels[..., None] if pixels.ndim == 2 else pixels


def _write(path, frame):
  cli._to_image(frame).save(path)


def _one_error_line(capsys_or_text):
  text = (capsys_or_text if isinstance(capsys_or_text, str)
          else capsys_or_text.readouterr().err)
  lines = text.strip().splitlines()
  assert len(lines) == 1, text
  assert lines[0].startswith("segspaste-jax: error: ")
  return lines[0]


@pytest.mark.slow
def test_demo_subprocess(tmp_path):
  out = tmp_path / "demo.png"
  proc = subprocess.run(
      [sys.executable, "-m", "segspaste_jax", "demo", "--out", str(out),
       "--feather", "8", "--alpha", "200"],
      capture_output=True, text=True, timeout=300, check=False)
  assert proc.returncode == 0, proc.stderr
  with Image.open(out) as im:
    assert im.format == "PNG" and im.size == (3 * 512, 512)
    assert im.mode == "RGB"
  for word in ("face", "helmet", "feather 8", "alpha 200", "first call",
               "warm call"):
    assert word in proc.stdout


@pytest.mark.slow
def test_demo_panels(tmp_path, capsys):
  out = tmp_path / "d.png"
  assert cli.main(["demo", "--out", str(out), "--save-segs",
                   str(tmp_path / "s.npz"), "--save-image",
                   str(tmp_path / "a.png")]) == 0
  panel = np.asarray(Image.open(out), np.float32) / 255
  image = load_sample_image()
  want = np.asarray(segs_paste(image, sample_segs(image), feather=5))[0]
  # the panels' bottom-left corners carry captions; compare above them
  top = 400
  np.testing.assert_allclose(panel[:top, :512], image[0, :top], atol=ROUNDING)
  np.testing.assert_allclose(panel[:top, 1024:], want[:top], atol=ROUNDING)
  assert np.abs(want - image[0]).max() > 0.5  # the paste is visible
  np.testing.assert_allclose(_read(tmp_path / "a.png"), image[0],
                             atol=ROUNDING)
  assert "wrote" in capsys.readouterr().out


def _sample_files(tmp_path, size=96):
  image = load_sample_image(size)
  image_path = tmp_path / "photo.png"
  _write(image_path, image[0])
  image = _read(image_path)[None]  # what the CLI reads back
  segs = sample_segs(image)
  save_segs(tmp_path / "segs.npz", segs)
  return image, segs


def test_paste_single_image(tmp_path, capsys):
  image, segs = _sample_files(tmp_path)
  out = tmp_path / "sub" / "out.png"
  assert cli.main(["paste", "--image", str(tmp_path / "photo.png"), "--segs",
                   str(tmp_path / "segs.npz"), "--feather", "3", "--alpha",
                   "180", "--out", str(out)]) == 0
  want = np.asarray(segs_paste(image, segs, feather=3, alpha=180))[0]
  np.testing.assert_allclose(_read(out), want, atol=ROUNDING)
  assert "4 segments into 1 frame" in capsys.readouterr().out


def _frames_folder(tmp_path, channels=3, n=3):
  """n different frames, SEGS with per-frame crops and a per-frame mask."""
  rng = np.random.default_rng(0)
  base = load_sample_image(64)[0]
  if channels == 1:
    base = base.mean(-1, keepdims=True)
  elif channels == 4:
    base = np.concatenate([base, np.full_like(base[..., :1], 0.8)], -1)
  folder = tmp_path / "frames"
  folder.mkdir()
  for i in range(n):
    _write(folder / f"frame_{i:03d}.png", np.roll(base, 7 * i, axis=1))
  (folder / "notes.txt").write_text("not a frame")
  frames = np.stack([_read(folder / f"frame_{i:03d}.png") for i in range(n)])
  segs = ((64, 64), [
      SEG(rng.random((n, 20, 24, channels)).astype(np.float32),
          soft_ellipse(20, 24), 0.9, (4, 6, 28, 26), (8, 10, 24, 22), "a"),
      SEG(rng.random((1, 30, 30, channels)).astype(np.float32),
          rng.random((n, 30, 30)).astype(np.float32), 0.8, (40, 30, 70, 60),
          (45, 35, 65, 55), "b"),
      SEG(rng.random((n + 2, 16, 16, channels)).astype(np.float32),
          rng.random((2, 16, 16)).astype(np.float32), 0.7, (20, 20, 36, 36),
          (22, 22, 34, 34), "c"),
  ])
  save_segs(tmp_path / "frames.npz", segs)
  return folder, frames, segs


@pytest.mark.slow
@pytest.mark.parametrize("chunk", [None, 2])
def test_paste_folder(tmp_path, chunk):
  folder, frames, segs = _frames_folder(tmp_path)
  out = tmp_path / "out"
  argv = ["paste", "--image", str(folder), "--segs",
          str(tmp_path / "frames.npz"), "--out", str(out), "--feather", "4"]
  if chunk:
    argv += ["--chunk", str(chunk)]
  with pytest.warns(UserWarning, match="combined"):
    want = np.asarray(segs_paste(frames, segs, feather=4))
  assert cli.main(argv) == 0
  assert sorted(p.name for p in out.iterdir()) == [
      "frame_000.png", "frame_001.png", "frame_002.png"]
  for i in range(3):
    np.testing.assert_allclose(_read(out / f"frame_{i:03d}.png"), want[i],
                               atol=ROUNDING)


@pytest.mark.slow
@pytest.mark.parametrize("channels", [1, 4])
def test_paste_folder_keeps_l_and_rgba(tmp_path, channels):
  folder, frames, segs = _frames_folder(tmp_path, channels)
  out = tmp_path / "out"
  assert cli.main(["paste", "--image", str(folder), "--segs",
                   str(tmp_path / "frames.npz"), "--out", str(out),
                   "--chunk", "2"]) == 0
  want = np.asarray(segs_paste(frames, segs))
  for i in range(3):
    with Image.open(out / f"frame_{i:03d}.png") as im:
      assert im.mode == {1: "L", 4: "RGBA"}[channels]
    np.testing.assert_allclose(_read(out / f"frame_{i:03d}.png"), want[i],
                               atol=ROUNDING)


@pytest.mark.slow
@pytest.mark.parametrize("flags", [["--feather-mode", "soft_edges"],
                                   ["--rgba-mode", "legacy"],
                                   ["--color-match", "mkl"]])
def test_paste_folder_modes(tmp_path, flags):
  """RGBA frames with RGB and RGBA crops, in either mode."""
  folder, frames, segs = _frames_folder(tmp_path, 4)
  items = list(segs[1])
  items[0] = items[0]._replace(cropped_image=items[0].cropped_image[..., :3])
  segs = (segs[0], items)
  save_segs(tmp_path / "mixed.npz", segs)
  out = tmp_path / "out"
  assert cli.main(["paste", "--image", str(folder), "--segs",
                   str(tmp_path / "mixed.npz"), "--out", str(out),
                   "--chunk", "2", "--feather", "6", *flags]) == 0
  kwargs = {flags[0][2:].replace("-", "_"): flags[1]}
  with pytest.warns(UserWarning, match="combined"):
    want = np.asarray(segs_paste(frames, segs, feather=6, **kwargs))
    plain = np.asarray(segs_paste(frames, segs, feather=6))
  assert np.abs(want - plain).max() > 0.05  # the mode matters here
  for i in range(3):
    np.testing.assert_allclose(_read(out / f"frame_{i:03d}.png"), want[i],
                               atol=ROUNDING)


@pytest.mark.slow
@pytest.mark.parametrize("ref_frames", [1, 3])
def test_paste_with_ref_folder(tmp_path, ref_frames):
  folder, frames, segs = _frames_folder(tmp_path)
  ref_folder = tmp_path / "ref"
  ref_folder.mkdir()
  refs = 1 - frames[:ref_frames]
  for i, frame in enumerate(refs):
    _write(ref_folder / f"r{i}.png", frame)
  out = tmp_path / "out"
  assert cli.main(["paste", "--image", str(folder), "--ref", str(ref_folder),
                   "--segs", str(tmp_path / "frames.npz"), "--out", str(out),
                   "--chunk", "2"]) == 0
  want = np.asarray(segs_paste(frames, segs, ref_image_opt=refs))
  for i in range(3):
    np.testing.assert_allclose(_read(out / f"frame_{i:03d}.png"), want[i],
                               atol=ROUNDING)


@pytest.mark.parametrize("argv", [[], ["demo"], ["paste"]])
def test_help(argv, capsys):
  with pytest.raises(SystemExit) as exit_info:
    cli.main(argv + ["--help"])
  assert exit_info.value.code == 0
  assert "usage: segspaste-jax" in capsys.readouterr().out


@pytest.mark.slow
def test_help_subprocess():
  proc = subprocess.run([sys.executable, "-m", "segspaste_jax", "paste",
                         "--help"], capture_output=True, text=True,
                        timeout=120, check=False)
  assert proc.returncode == 0 and "--segs" in proc.stdout


@pytest.mark.slow
def test_bad_input_subprocess(tmp_path):
  proc = subprocess.run(
      [sys.executable, "-m", "segspaste_jax", "paste", "--image",
       str(tmp_path / "missing.png"), "--segs", str(tmp_path / "s.npz"),
       "--out", str(tmp_path / "o.png")],
      capture_output=True, text=True, timeout=120, check=False)
  assert proc.returncode != 0
  line = _one_error_line(proc.stderr)
  assert "missing.png" in line or "s.npz" in line
  assert "Traceback" not in proc.stderr


def test_bad_input(tmp_path, capsys):
  folder, _, _ = _frames_folder(tmp_path)
  segs = str(tmp_path / "frames.npz")
  photo = tmp_path / "photo.png"
  _write(photo, load_sample_image(64)[0])
  bad_segs = tmp_path / "bad.npz"
  bad_segs.write_bytes(b"PK\x03\x04 truncated")
  _write(folder / "zz_odd.png", np.zeros((10, 10, 3)))
  out = str(tmp_path / "out")
  cases = [
      (["paste", "--image", str(tmp_path / "nope.png"), "--segs", segs,
        "--out", out], "nope.png"),
      (["paste", "--image", str(photo), "--segs", str(tmp_path / "no.npz"),
        "--out", out], "no.npz"),
      (["paste", "--image", str(photo), "--segs", str(bad_segs), "--out",
        out], "bad.npz"),
      (["paste", "--image", str(photo), "--segs", str(photo), "--out", out],
       "not a SEGS .npz file"),
      (["paste", "--image", str(photo), "--segs", segs, "--out", out,
        "--feather", "101"], "--feather: expected a number in 0..100"),
      (["demo", "--feather", "-1"], "--feather"),
      (["demo", "--alpha", "x"], "--alpha"),
      (["paste", "--image", str(folder), "--segs", segs, "--out", out],
       "zz_odd.png is 10x10"),
      (["paste", "--image", str(photo), "--segs", segs, "--out", out,
        "--ref", str(tmp_path / "frames" / "zz_odd.png")], "--ref"),
      (["paste", "--image", str(folder), "--segs", segs, "--out",
        str(folder)], "--out"),
      (["paste", "--image", str(photo), "--out", out], "--segs"),
      (["frobnicate"], "invalid choice"),
      ([], "required"),
  ]
  for argv, match in cases:
    assert cli.main(argv) == 2, argv
    assert match in _one_error_line(capsys), argv
  assert not (tmp_path / "out").exists()


def test_library_errors_are_one_line(tmp_path, capsys):
  """SEGS that do not fit the image: the library's ValueError, one line."""
  photo = tmp_path / "photo.png"
  _write(photo, load_sample_image(64)[0, ..., :1])  # grey: 1 channel
  image = load_sample_image(64)
  save_segs(tmp_path / "rgb.npz", sample_segs(image))  # 3-channel crops
  assert cli.main(["paste", "--image", str(photo), "--segs",
                   str(tmp_path / "rgb.npz"), "--out",
                   str(tmp_path / "o.png")]) == 2
  assert "channels" in _one_error_line(capsys)


def _pixels(path):
  with Image.open(path) as im:
    return np.asarray(im)


def _stamps(folder):
  """Each PNG's inode and modification time: changed by any rewrite."""
  return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns)
          for p in folder.glob("*.png")}


# Runs the CLI in a child process that stops, deterministically, inside the
# write of frame STOP_AT (its PNG written under its temporary name, not yet
# renamed into place) and says so by creating the file READY; the test then
# sends SIGINT, which lands there. No race with how fast the frames go.
_INTERRUPTIBLE_CLI = r"""
import os, pathlib, signal, sys, time
from segspaste_jax import cli
# Ctrl-C as at a terminal, even where the test runs in a background job
# (whose children inherit SIGINT ignored: Python then leaves it ignored).
signal.signal(signal.SIGINT, signal.default_int_handler)
ready, stop_at, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
real_replace, renames = os.replace, [0]

def replace(src, dst):
  if str(src).endswith(".partial"):
    renames[0] += 1
    if renames[0] == stop_at:
      pathlib.Path(ready).touch()
      # SIGINT arrives here. Short sleeps: a signal the kernel hands to
      # another thread (JAX's) is only seen when this one wakes up.
      for _ in range(12000):
        time.sleep(0.05)
  real_replace(src, dst)

os.replace = replace
sys.exit(cli.main(argv))
"""


@pytest.mark.slow
def test_interrupted_folder_run_leaves_whole_files_and_resumes(tmp_path):
  """Ctrl-C during a long folder run, in the middle of writing a frame:
  status 130 within seconds, a line saying how many frames were written,
  and no truncated or temporary files. Then `--skip-existing` finishes the
  run: the frames already written are left alone (same inode and mtime) and
  every output is that of an uninterrupted run, bit for bit. Per-frame crops
  (frame i takes crop i) and a 2-frame mask batch (combined over all N
  frames) make any slip in the resumed frames' numbering show."""
  import os
  import signal
  import time
  rng = np.random.default_rng(5)
  folder, out = tmp_path / "frames", tmp_path / "out"
  folder.mkdir()
  n, stop_at = 40, 6
  for i in range(n):
    _write(folder / f"f{i:03d}.png", rng.random((96, 96, 3), np.float32))
  save_segs(tmp_path / "segs.npz", ((96, 96), [
      SEG(rng.random((n, 24, 24, 3), np.float32), soft_ellipse(24, 24), 0.9,
          (10, 10, 34, 34), (10, 10, 34, 34), "face"),
      SEG(rng.random((1, 30, 30, 3), np.float32),
          rng.random((2, 30, 30), np.float32), 0.8, (40, 50, 70, 80),
          (40, 50, 70, 80), "hand")]))
  argv = ["paste", "--image", str(folder), "--segs", str(tmp_path /
                                                        "segs.npz"),
          "--chunk", "2"]
  ready = tmp_path / "ready"
  proc = subprocess.Popen(
      [sys.executable, "-c", _INTERRUPTIBLE_CLI, str(ready), str(stop_at),
       *argv, "--out", str(out)],
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
      env={**os.environ, "SEGSPASTE_JAX_COMPILE_CACHE": "off"})
  deadline = time.monotonic() + 300
  while not ready.exists() and proc.poll() is None:
    assert time.monotonic() < deadline, "the child never reached its frame"
    time.sleep(0.02)
  assert proc.poll() is None, proc.communicate()
  assert (out / f".f{stop_at - 1:03d}.png.partial").is_file()
  proc.send_signal(signal.SIGINT)
  interrupted = time.monotonic()
  _, err = proc.communicate(timeout=60)
  assert time.monotonic() - interrupted < 10
  assert proc.returncode == 130, err
  written = sorted(out.glob("*.png"))
  assert len(written) == stop_at - 1
  assert f"wrote {len(written)} of {n} frames" in err
  assert "rerun with --skip-existing" in err
  assert not [p for p in out.iterdir() if p.suffix != ".png"]
  for path in written:  # each one whole
    with Image.open(path) as im:
      im.load()

  before = _stamps(out)
  full = tmp_path / "full"
  assert cli.main(argv + ["--out", str(full)]) == 0
  assert cli.main(argv + ["--out", str(out), "--skip-existing"]) == 0
  after = _stamps(out)
  assert {name: after[name] for name in before} == before  # not rewritten
  assert sorted(after) == sorted(p.name for p in full.iterdir())
  assert len(after) == n
  for name in after:
    np.testing.assert_array_equal(_pixels(out / name), _pixels(full / name),
                                  err_msg=name)
  assert not [p for p in out.iterdir() if p.suffix != ".png"]


@pytest.mark.slow
@pytest.mark.parametrize("with_ref", [False, True])
def test_skip_existing_pastes_the_missing_frames(tmp_path, capsys, with_ref):
  """Frame 0 of 3 already written: it is kept as it is, and frames 1 and 2
  come out as in a full run: frame i takes crop i, mask i and reference
  frame i (the stream's first frame is frame 1), and the 2-frame mask
  batch is still combined for 3 frames. (The shapes of test_paste_folder
  and test_paste_with_ref_folder: nothing new to compile.)"""
  folder, frames, _ = _frames_folder(tmp_path)
  argv = ["paste", "--image", str(folder), "--segs",
          str(tmp_path / "frames.npz"), "--chunk", "2"]
  if with_ref:
    ref_folder = tmp_path / "ref"
    ref_folder.mkdir()
    for i, frame in enumerate(frames):  # each its own reference frame
      _write(ref_folder / f"r{i}.png", np.roll(1 - frame, 5 * i, axis=0))
    argv += ["--ref", str(ref_folder)]
  full, out = tmp_path / "full", tmp_path / "out"
  assert cli.main(argv + ["--out", str(full)]) == 0
  out.mkdir()
  kept = out / "frame_000.png"
  _write(kept, np.full((64, 64, 3), 100 / 255, np.float32))  # not a paste
  stamp = kept.stat().st_ino, kept.stat().st_mtime_ns
  capsys.readouterr()
  assert cli.main(argv + ["--out", str(out), "--skip-existing"]) == 0
  assert "into 2 of 3 frames (1 already there, skipped)" in (
      capsys.readouterr().out)
  assert (kept.stat().st_ino, kept.stat().st_mtime_ns) == stamp
  assert (_pixels(kept) == 100).all()
  for i in (1, 2):
    np.testing.assert_array_equal(_pixels(out / f"frame_{i:03d}.png"),
                                  _pixels(full / f"frame_{i:03d}.png"),
                                  err_msg=f"frame {i}")
  # every frame there: nothing to paste, nothing touched
  stamps = _stamps(out)
  assert cli.main(argv + ["--out", str(out), "--skip-existing"]) == 0
  assert "all 3 frames already in" in capsys.readouterr().out
  assert _stamps(out) == stamps
  assert sorted(stamps) == ["frame_000.png", "frame_001.png", "frame_002.png"]
