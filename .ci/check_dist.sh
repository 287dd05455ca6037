#!/usr/bin/env bash
# Packaging check: build the sdist and the wheel, check what they hold,
# install the wheel into a fresh virtual environment and run the demo there.
#
#   .ci/check_dist.sh [--full]      (needs `build`: pip install build)
#
# The fresh environment gets the wheel alone (--no-deps) and sees the
# running Python's packages (jax, numpy, ...) through a .pth file; `pip
# check` then proves the wheel's requirements are met by them. With --full
# it installs the wheel with its dependencies instead (a minute or more:
# about 600 MB to unpack, even from pip's cache).
#
# The sources are copied to a temporary folder first (git's tracked and
# untracked, not ignored, files), so that nothing else lying in the checkout
# is built. `python -m build` makes the sdist from that copy and the wheel
# from the sdist, so the wheel also proves the sdist is complete. Last, a
# wheel built straight from the checkout must leave it as it was (the build
# backend, hatchling, builds out of tree).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python}
full=0
case "${1:-}" in
  "") ;;
  --full) full=1 ;;
  *) echo "usage: $0 [--full]" >&2; exit 2 ;;
esac

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

mkdir "$tmp/src"
git ls-files -z --cached --others --exclude-standard \
  | tar --null -T - --ignore-failed-read -cf - 2>/dev/null \
  | tar -xf - -C "$tmp/src"

"$python" -m build -q --outdir "$tmp/dist" "$tmp/src" >"$tmp/build.log" 2>&1 \
  || { cat "$tmp/build.log"; echo "check_dist: python -m build failed"; exit 1; }
sdist=$(ls "$tmp"/dist/*.tar.gz)
wheel=$(ls "$tmp"/dist/*.whl)

# What the sdist and the wheel hold (stdlib only: no jax needed here).
"$python" - "$tmp/src" "$sdist" "$wheel" <<'EOF'
import pathlib, re, sys, tarfile, zipfile

src, sdist, wheel = map(pathlib.Path, sys.argv[1:])
version = re.search(r'__version__ = "([^"]+)"',
                    (src / "segspaste_jax/_src/version.py").read_text())[1]
problems = []
if wheel.name != f"segspaste_jax-{version}-py3-none-any.whl":
  problems.append(f"wheel {wheel.name}: expected version {version}")
if sdist.name != f"segspaste_jax-{version}.tar.gz":
  problems.append(f"sdist {sdist.name}: expected version {version}")

# every file git shows in the package must ship (package data included)
def files(folder):
  return sorted(str(p.relative_to(src)) for p in (src / folder).rglob("*")
                if p.is_file() and "__pycache__" not in p.parts)
package = files("segspaste_jax")
with zipfile.ZipFile(wheel) as z:
  in_wheel = set(z.namelist())
  metadata = z.read(f"segspaste_jax-{version}.dist-info/METADATA").decode()
for need in package:
  if need not in in_wheel:
    problems.append(f"wheel lacks {need}")
# the ComfyUI node pack (its loader and example workflows), for
# `segspaste-jax comfyui install` from an installed wheel
for need in files("comfyui_segspaste_jax"):
  inside = "segspaste_jax/_comfyui_pack/" + need.split("/", 1)[1]
  if inside not in in_wheel:
    problems.append(f"wheel lacks {inside} (from {need})")
for name in in_wheel:
  if not name.startswith(("segspaste_jax/", "segspaste_jax-")):
    problems.append(f"wheel holds {name}, outside the package")
if f"\nVersion: {version}\n" not in metadata:
  problems.append("wheel METADATA: wrong version")

top = f"segspaste_jax-{version}/"
with tarfile.open(sdist) as t:
  in_sdist = {m.name[len(top):] for m in t.getmembers() if m.isfile()}
license_files = [n for n in ("LICENSE", "LICENSE.txt", "LICENSE.md")
                 if (src / n).exists()]
for need in ["PKG-INFO", "pyproject.toml", "README.md", *license_files,
             *package, *files("tests")]:
  if need not in in_sdist:
    problems.append(f"sdist lacks {need}")

for p in problems:
  print("check_dist:", p)
if problems:
  sys.exit(1)
print(f"check_dist: {sdist.name} ({len(in_sdist)} files), {wheel.name} "
      f"({len(in_wheel)} files) hold the package, astronaut.png and py.typed")
EOF

# The wheel in a fresh environment: its version, and the demo (run outside
# the checkout, so that the installed package is the one imported).
venv=$tmp/wheel-venv
"$python" -m venv --without-pip "$venv"
pip_venv=("$python" -m pip --python "$venv/bin/python" --disable-pip-version-check)
if [ "$full" = 1 ]; then
  "${pip_venv[@]}" install -q "$wheel"
else
  "${pip_venv[@]}" install -q --no-deps "$wheel"
  # A plain path line: the running Python's packages, but not its .pth files
  # (so not an editable install of this checkout).
  "$python" -c 'import sysconfig; p = sysconfig.get_paths()
print(p["purelib"]); print(p["platlib"])' \
    >"$("$venv/bin/python" -c 'import sysconfig
print(sysconfig.get_paths()["purelib"])')/zz-check-dist-deps.pth"
  # Only this package's requirements count (not those of the rest there).
  broken=$("${pip_venv[@]}" check 2>/dev/null || true)
  if grep '^segspaste-jax ' <<<"$broken"; then
    echo "check_dist: the wheel's requirements are not met"; exit 1
  fi
fi
cd "$tmp"
"$venv/bin/python" - <<'EOF'
import importlib.metadata, pathlib, segspaste_jax
where = pathlib.Path(segspaste_jax.__file__).parent
meta = importlib.metadata.version("segspaste-jax")
assert segspaste_jax.__version__ == meta, (segspaste_jax.__version__, meta)
assert "wheel-venv" in str(where), where
assert (where / "astronaut.png").is_file() and (where / "py.typed").is_file()
assert (where / "_comfyui_pack" / "__init__.py").is_file()
print(f"check_dist: installed wheel {meta} == segspaste_jax.__version__")
EOF
SEGSPASTE_JAX_COMPILE_CACHE="$tmp/xla" "$venv/bin/segspaste-jax" demo \
  --out "$tmp/demo.png" >/dev/null
test -s "$tmp/demo.png"
echo "check_dist: segspaste-jax demo from the wheel wrote demo.png"

cd - >/dev/null
before=$(git status --porcelain --ignored | grep -v -e '\.venv' || true)
"$python" -m pip wheel -q --no-deps -w "$tmp/here" . >/dev/null
after=$(git status --porcelain --ignored | grep -v -e '\.venv' || true)
if [ "$before" != "$after" ]; then
  echo "check_dist: building from the checkout wrote into it:"
  diff <(echo "$before") <(echo "$after") || true
  exit 1
fi
echo "check_dist: a build from the checkout left it unchanged"
