"""Commands about models: describe one, export a checkpoint, list and pull the paper's released ones."""

import os

import click

from ..fileio import check_output
from ..spec import DECONV_FORMS, EXPORT_DECONV
from .options import progress_option, shape_option_value, show_progress, trust_option


@click.command()
@click.argument("model", required=False)
@trust_option
def info(model, trust_pickle):
    """Describe MODEL: the shipped demo [default], an export directory, a checkpoint or paper:NAME."""
    from ..store import resolve

    resolved = resolve(model, trust_pickle=trust_pickle)
    checkpoint = resolved.kind == "checkpoint" or bool(resolved.checkpoint and _importable("torch"))
    if checkpoint:
        resolved.torch_model()  # fails before anything is printed
    click.echo("model:           {} ({})".format(resolved.label, resolved.kind))
    if checkpoint:
        _checkpoint_info(resolved)
    if resolved.kind != "checkpoint" or resolved.has_export():
        _export_info(resolved)
    if resolved.kind == "engine":
        _engine_info(resolved)


def _importable(name):
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except ValueError:  # blocked in sys.modules
        return False


def _checkpoint_info(resolved):
    from ..checkpoint import parameter_counts

    model, ckpt = resolved.torch_model(), resolved.checkpoint_info()
    d = model.downsampling
    click.echo("checkpoint:      {}".format(ckpt.path))
    click.echo("format:          {}, {} serialization".format(ckpt.format, ckpt.serialization))
    click.echo("N, M:            {}, {} ({})".format(ckpt.N, ckpt.M, ckpt.nm_source))
    click.echo("latent channels: {}".format(ckpt.N))
    click.echo("downsampling:    {}x (latent of a 512x512 image: {}x{})".format(d, 512 // d, 512 // d))
    for part, n in parameter_counts(model).items():
        click.echo("parameters ({}): {:,}".format(part, n))


RUNTIME_NAMES = {"onnxruntime": "ONNX Runtime", "tensorrt": "TensorRT"}


def _graph_rules(rules):
    """The manifest's [min_version, variant] rules, highest first as the backends read them, in words:
    'custom-op graph from 1.16, standard-ops graph before 1.16'."""
    words, above = [], None
    for min_version, variant in rules:
        lowest = min_version in ("0", "")
        if lowest:
            versions = "before " + above if above else "for any version"
        else:
            versions = "from " + min_version + (" to before " + above if above else "")
        words.append("{} graph {}".format(variant, versions))
        above = min_version
    return ", ".join(words)


def _export_info(resolved):
    manifest = resolved.manifest()
    shape = manifest["shape"]
    click.echo("export:          {}".format(resolved.export_dir()))
    click.echo("N, M:            {}, {} (downsampling {}x)".format(manifest["N"], manifest["M"], manifest["downsampling"]))
    click.echo("input shape:     {}".format("any (multiples of {})".format(manifest["downsampling"]) if shape is None
                                            else "fixed {batch}x3x{height}x{width}".format(**shape)))
    click.echo("opset:           {}".format(manifest["opset"]))
    click.echo("fingerprint:     {}".format(manifest["fingerprint"]))
    for runtime, rules in sorted(manifest["runtimes"].items()):
        click.echo("{:<17}{}".format(RUNTIME_NAMES.get(runtime, runtime) + ":", _graph_rules(rules)))
    rows = manifest["verification"]
    click.echo("verified:        latent error {:.2e} (PyTorch fp32 {:.2e}), image error {:.2e} (PyTorch fp32 {:.2e}), "
               "symbols equal >= {:.4%}".format(
                   max(r["latent_max_abs_diff"] for r in rows), max(r["torch_fp32_latent_max_abs_diff"] for r in rows),
                   max(r["image_max_abs_diff"] for r in rows), max(r["torch_fp32_image_max_abs_diff"] for r in rows),
                   min(r["symbol_agreement"] for r in rows)))
    click.echo("made with:       " + ", ".join("{} {}".format(k, v) for k, v in sorted(manifest["tools"].items())))


def _engine_info(resolved):
    """Each engine of an engine directory as its sidecar describes it, its hash checked."""
    from ..artifacts import engine_paths, file_sha256, read_sidecar, short
    from ..errors import EngineError

    for path in engine_paths(resolved.export_dir()):
        try:
            s = read_sidecar(path)
        except EngineError as exc:
            click.echo("engine:          {}: {}".format(os.path.basename(path), exc))
            continue
        gpu, profile = s.get("gpu") or {}, s.get("profile") or {}
        click.echo("engine:          {} ({} bytes, SHA-256 {}{})".format(
            os.path.basename(path), os.path.getsize(path), short(s.get("engine_sha256")),
            "" if file_sha256(path) == s.get("engine_sha256") else ": the file differs, it will be refused"))
        click.echo("  built:         TensorRT {} on {} (compute capability {}), target {}, {}".format(
            s.get("tensorrt_version"), gpu.get("name"), gpu.get("compute_capability"), s.get("target"), s.get("built")))
        click.echo("  layers:        GDN1 {}, decoder {}, flags {}".format(
            s.get("gdn"), s.get("deconv"), ", ".join(s.get("builder_flags") or ()) or "none"))
        click.echo("  profile:       {} / {} / {} (min / opt / max input)".format(
            *("x".join(str(v) for v in profile.get(k, ())) for k in ("min", "opt", "max"))))
        activations = s.get("activation_bytes")
        click.echo("  memory:        a context reserves {} for activations; workspace {:.0f} MiB".format(
            "{:.0f} MiB".format(activations / 2.0 ** 20) if activations is not None else "an unrecorded amount",
            s.get("workspace_bytes", 0) / 2.0 ** 20))


@click.command()
@click.argument("checkpoint", required=False)
@click.option("-o", "--output", type=click.Path(file_okay=False), help="Export directory [default: export/<checkpoint name>].")
@click.option("--opset", type=int, default=None, help="ONNX opset [default: 13, the highest TensorRT 8.2 parses].")
@click.option("--fixed-shape", callback=shape_option_value, help="Fix every dimension, BATCHxHEIGHTxWIDTH or HEIGHTxWIDTH for batch 1 (e.g. 1x512x512).")
@click.option("--deconv", type=click.Choice(DECONV_FORMS), default=EXPORT_DECONV, show_default=True,
              help="The decoder's hidden transposed convolutions as one Conv per output phase (faster in ONNX Runtime, "
                   "same values) or as ConvTranspose.")
@trust_option
@click.option("--force", is_flag=True, help="Replace an earlier export of other weights in OUTPUT (one of the same "
                                            "weights is always replaced; never a directory that is no export).")
def export(checkpoint, output, opset, fixed_shape, deconv, trust_pickle, force):
    """Export CHECKPOINT (a file or paper:NAME) [default: the shipped demo's] to ONNX (GDN1 as a custom op),
    verified against PyTorch."""
    from ..pretrained import PREFIX, cached_path, pull, release_name
    from ..store import DEMO_CHECKPOINT

    paper = bool(checkpoint) and checkpoint.startswith(PREFIX)
    path = cached_path(release_name(checkpoint)) if paper else checkpoint or DEMO_CHECKPOINT
    output = output or os.path.join("export", os.path.splitext(os.path.basename(path))[0])
    check_output(output, directory=True, beside=True)
    if paper:  # fetched once the output is known to be writable
        path = pull(checkpoint)
    from ..checkpoint import load_checkpoint
    from ..export import DEFAULT_OPSET, export_model

    model, ckpt = load_checkpoint(path, trust=trust_pickle)
    manifest = export_model(model, ckpt, output, opset=opset or DEFAULT_OPSET, shape=fixed_shape, deconv=deconv,
                            replace_other=force)
    click.echo("exported ({}, {}) from {} checkpoint to {}".format(ckpt.N, ckpt.M, ckpt.format, output))
    click.echo("  verified against PyTorch float64 ({})".format(manifest["verification_rule"]))
    for row in manifest["verification"]:
        click.echo(
            "  {input:<16} {variant:<13} latent error {latent_max_abs_diff:.2e} (PyTorch fp32 "
            "{torch_fp32_latent_max_abs_diff:.2e})  symbols equal {symbol_agreement:.4%}  image error "
            "{image_max_abs_diff:.2e} (PyTorch fp32 {torch_fp32_image_max_abs_diff:.2e})".format(**row)
        )
    click.echo("fingerprint {}".format(manifest["fingerprint"][:16]))


@click.group(invoke_without_command=True)
@click.pass_context
def models(ctx):
    """The paper's released models (-m paper:NAME): which are cached and verified, which can be pulled."""
    if ctx.invoked_subcommand is not None:
        return
    from ..pretrained import URL_ENV, base_url, release_dir, releases
    from ..store import resolve

    click.echo("from {} (${}), cached in {}".format(base_url(), URL_ENV, release_dir()))
    click.echo("{:<24} {:>4} {:>2}  {:<14} {:>9}  {}".format("NAME", "N", "M", "SERIALIZATION", "SIZE", "STATE"))
    for row in releases():
        size = "-" if row["size"] is None else "{:.1f} MiB".format(row["size"] / 2.0 ** 20)
        exported = row["state"] == "verified" and resolve(row["name"]).has_export()
        click.echo("{name:<24} {N:>4} {M:>2}  {serialization:<14} {0:>9}  {state}{1}".format(
            size, ", exported" if exported else "", **row))


@models.command()
@click.argument("names", nargs=-1)
@click.option("--all", "pull_all", is_flag=True, help="Every released model.")
@click.option("--from", "from_file", type=click.Path(exists=True, dir_okay=False),
              help="Import this file (fetched elsewhere) instead of downloading it; it is checked all the same.")
@click.option("--sha256-list", type=click.Path(exists=True, dir_okay=False),
              help="Check against this sha256sums.txt (the authors', fetched elsewhere) instead of the server's; "
                   "it joins the cached list.")
@click.option("--export", "export_now", is_flag=True, help="Export each now as well (needs torch) [default: on first use].")
@progress_option
def pull(names, pull_all, from_file, sha256_list, export_now, progress):
    """Download (or import --from) the paper's released NAMES into the cache, verified against the
    authors' SHA-256 list. The base URL is $ROI_TRT_PAPER_URL when set (a mirror)."""
    import sys

    from ..errors import RoiTrtError, UsageError
    from ..pretrained import PREFIX, RELEASES, release_name
    from ..pretrained import pull as pull_release
    from ..store import resolve

    if bool(names) == pull_all:
        raise UsageError("give NAME... or --all")
    names = [PREFIX + name for name in RELEASES] if pull_all else names
    if from_file and len(names) > 1:
        raise UsageError("--from imports one file: give one NAME")
    from ..pretrained import cached_path

    failed = 0
    for name in names:
        try:
            if from_file and os.path.isfile(cached_path(release_name(name))):
                click.echo("{} is cached and verified already: --from {} not used".format(name, from_file), err=True)
            path = pull_release(name, from_file=from_file, sha256_list=sha256_list, progress=show_progress(progress))
            click.echo("{}: {}".format(name, path))
            if export_now:
                click.echo("{}: exported to {}".format(name, resolve(PREFIX + release_name(name)).export_dir()))
        except RoiTrtError as exc:
            if len(names) == 1:
                raise
            click.echo("Error: {}".format(exc), err=True)
            failed += 1
    if failed:
        sys.exit(1)


COMMANDS = (info, export, models)
