"""The README demo: the bundled photos through the full codec, with original|decoded PNGs."""

import os

import numpy as np

# Marks a directory the demo made, so a later run may replace its files and never anything else's.
MARKER = ".roi-trt-demo"


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def side_by_side(original, decoded):
    gap = np.full((original.shape[0], 8, 3), 255, np.uint8)
    return np.concatenate([original, gap, decoded], axis=1)


def _claim(out_dir):
    """Use `out_dir` only if it is new, empty or the demo's own."""
    from .errors import UsageError

    if os.path.isdir(out_dir) and os.listdir(out_dir) and not os.path.exists(os.path.join(out_dir, MARKER)):
        raise UsageError("{} holds files the demo did not write: choose another -o".format(out_dir))
    os.makedirs(out_dir, exist_ok=True)
    open(os.path.join(out_dir, MARKER), "a").close()


def run_demo(out_dir, model=None, backend="auto", echo=print):
    """Encode and decode every bundled sample photo; write .roi, decoded PNG and original|decoded PNG.

    Returns one dict per photo (size, bytes, bpp, PSNR, encode/decode times split by stage).
    """
    from PIL import Image

    from .codec import open_codec
    from .fileio import atomic_output, write_bytes_atomic
    from .imageio import load_rgb
    from .samples import sample_photos

    _claim(out_dir)
    rows = []
    with open_codec(model, backend=backend) as codec:
        for path in sample_photos():
            name = os.path.splitext(os.path.basename(path))[0]
            rgb, _ = load_rgb(path)
            data, enc = codec.encode(rgb)
            decoded, dec = codec.decode(data)
            write_bytes_atomic(os.path.join(out_dir, name + ".roi"), data)
            for suffix, image in (("decoded", decoded), ("side_by_side", side_by_side(rgb, decoded))):
                with atomic_output(os.path.join(out_dir, "{}.{}.png".format(name, suffix))) as tmp:
                    Image.fromarray(image).save(tmp, format="PNG")
            row = {
                "image": name, "width": rgb.shape[1], "height": rgb.shape[0], "bytes": len(data),
                "bpp": len(data) * 8.0 / (rgb.shape[0] * rgb.shape[1]), "psnr_db": psnr(rgb, decoded),
                "analysis_ms": enc.transform * 1e3, "entropy_encode_ms": enc.entropy * 1e3,
                "entropy_decode_ms": dec.entropy * 1e3, "synthesis_ms": dec.transform * 1e3,
            }
            rows.append(row)
            echo(
                "{image:<13} {width}x{height}  {bpp:.3f} bpp  PSNR {psnr_db:.2f} dB  encode {enc:.0f} ms "
                "(analysis {analysis_ms:.0f} + entropy {entropy_encode_ms:.1f})  decode {dec:.0f} ms "
                "(entropy {entropy_decode_ms:.1f} + synthesis {synthesis_ms:.0f})".format(
                    enc=row["analysis_ms"] + row["entropy_encode_ms"],
                    dec=row["entropy_decode_ms"] + row["synthesis_ms"], **row
                )
            )
        echo("wrote .roi streams, decoded and side-by-side PNGs to {} (model {}, backend {}, {})".format(
            out_dir, codec.model.label, codec.backend.name, codec.backend.device))
    return rows
