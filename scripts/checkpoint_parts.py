"""Move a finished training checkpoint between machines in parts of a bounded size.

A lent GPU machine hands back at most 8 files of 16 MiB (64 MiB together): too little for a
ResNet50 checkpoint with its optimizer state (about 190 MB). `split` slims it to what resuming
a finished run reads (optbench.train.slim_checkpoint: config, history, weights; float16 weights
by default, 47 MB for a ResNet50) and cuts it into parts, with a manifest of SHA-256 sums;
`join` checks every sum and writes the checkpoint where `optbench run` resumes from it.

    # on the GPU machine (scripts/gpu_train.sh does this after training)
    python3 scripts/checkpoint_parts.py split RUN/work/teacher-train.ckpt $OUT
    # back here, into the run folder the CPU run continues in
    python scripts/checkpoint_parts.py join FILES_AT runs/composition/work/teacher-train.ckpt
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from optbench.errors import ConfigError, MissingInputError  # noqa: E402
from optbench.io import atomic_write_bytes, atomic_write_json  # noqa: E402
from optbench.train import SLIM_DTYPES, slim_checkpoint  # noqa: E402

MANIFEST = "parts.json"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def split(src: Path, out: Path, dtype: str = "float16", part_mib: float = 15.9) -> dict:
    """Slim `src` (a finished run's checkpoint) and write it to `out` as NAME.partNN files and
    parts.json (names, sizes, SHA-256 of each part and of the whole). Returns the manifest."""
    if part_mib <= 0:
        raise ConfigError(f"--part-mib {part_mib}: give a positive size in MiB")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        slim = Path(tmp) / src.name
        summary = slim_checkpoint(src, slim, dtype)
        data = slim.read_bytes()
    size = int(part_mib * 2**20)
    parts = []
    for i in range(0, len(data), size):
        chunk = data[i:i + size]
        name = f"{src.name}.part{i // size:02d}"
        atomic_write_bytes(out / name, chunk)
        parts.append({"file": name, "bytes": len(chunk), "sha256": _sha256(chunk)})
    manifest = {"checkpoint": src.name, "bytes": len(data), "sha256": _sha256(data),
                "slim": summary, "parts": parts}
    atomic_write_json(out / MANIFEST, manifest)
    return manifest


def join(folder: Path, dst: Path, replace: bool = False) -> dict:
    """The checkpoint that `split` cut into `folder`, each part and the whole checked against
    parts.json, written atomically to `dst` (refused where a file is there already, unless
    `replace`: a local run's checkpoint is not overwritten by accident)."""
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise MissingInputError(f"{manifest_path} not found: give the folder `split` wrote "
                                "(the files the GPU machine handed back)")
    manifest = json.loads(manifest_path.read_text())
    chunks = []
    for part in manifest["parts"]:
        path = folder / part["file"]
        if not path.is_file():
            raise MissingInputError(f"{path} is missing: {len(manifest['parts'])} parts were "
                                    "written; copy all of them")
        chunk = path.read_bytes()
        if len(chunk) != part["bytes"] or _sha256(chunk) != part["sha256"]:
            raise ConfigError(f"{path} does not match its SHA-256 in {MANIFEST}: it was cut "
                              "short or changed in transfer; fetch it again")
        chunks.append(chunk)
    data = b"".join(chunks)
    if _sha256(data) != manifest["sha256"]:
        raise ConfigError(f"the joined parts do not match the checkpoint's SHA-256 in "
                          f"{MANIFEST}; fetch the parts again")
    if dst.exists() and not replace:
        raise ConfigError(f"{dst} exists: a run's checkpoint is there already. Move it away "
                          "or pass --replace to overwrite it")
    atomic_write_bytes(dst, data)
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="verb", required=True)
    s = sub.add_parser("split", help="slim a finished checkpoint and cut it into parts")
    s.add_argument("checkpoint", type=Path)
    s.add_argument("out", type=Path)
    s.add_argument("--dtype", default="float16", choices=SLIM_DTYPES)
    s.add_argument("--part-mib", type=float, default=15.9)
    j = sub.add_parser("join", help="check the parts and write the checkpoint")
    j.add_argument("folder", type=Path)
    j.add_argument("checkpoint", type=Path)
    j.add_argument("--replace", action="store_true")
    args = parser.parse_args(argv)
    try:
        if args.verb == "split":
            m = split(args.checkpoint, args.out, args.dtype, args.part_mib)
            print(f"wrote {len(m['parts'])} parts of {m['checkpoint']} ({m['bytes']:,} bytes, "
                  f"{m['slim']['dtype']} weights, from {m['slim']['bytes_before']:,}) and "
                  f"{MANIFEST} to {args.out}")
        else:
            m = join(args.folder, args.checkpoint, args.replace)
            print(f"wrote {args.checkpoint} ({m['bytes']:,} bytes, {len(m['parts'])} parts, "
                  "SHA-256 checked)")
    except (ConfigError, MissingInputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
