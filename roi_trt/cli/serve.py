"""Commands of the decode service: write a Triton model repository, run Triton on it, stream a camera to it."""

import signal
import socket
import sys

import click

from ..bitstream import MAX_PIXELS
from ..fileio import check_output
from .options import (
    backend_option, force_option, memory_option, memory_option_value, model_option, size_option_value, threads_option,
)


@click.group()
def serve():
    """A decode service for many cameras on NVIDIA Triton Inference Server."""


@serve.command("repo")
@click.argument("models", nargs=-1, required=True)
@click.option("-o", "--output", default="model_repository", show_default=True, type=click.Path(file_okay=False),
              help="Repository directory (an existing one is replaced only with --force, and only if this command wrote it).")
@click.option("--synthesis", type=click.Choice(("inprocess", "onnxruntime", "tensorrt", "python")), default="inprocess",
              show_default=True,
              help="Where the synthesis transform runs: inside roi_decode (needs only Triton's Python backend), or as "
                   "its own model on Triton's ONNX Runtime or TensorRT backend (NVIDIA's containers; tensorrt needs "
                   "engine directories from roi-trt build) or on the Python backend, batched across cameras.")
@click.option("--instances", default=1, show_default=True, type=click.IntRange(1),
              help="Instances of each model (per GPU with --device gpu).")
@click.option("--max-batch", default=8, show_default=True, type=click.IntRange(1),
              help="Requests Triton gathers into one batch (dynamic batching).")
@click.option("--queue-delay-us", default=2000, show_default=True, type=click.IntRange(0),
              help="How long Triton waits to fill a batch, in microseconds.")
@click.option("--device", type=click.Choice(("cpu", "gpu")), default="cpu", show_default=True,
              help="Where the synthesis runs (Triton instance kind); entropy decoding always runs on the CPU.")
@threads_option
@click.option("--max-stream-bytes", default=None, type=click.IntRange(64),
              help="Refuse larger streams before decoding [default: 4 bits per pixel of --max-pixels].")
@click.option("--max-pixels", default=None, type=click.IntRange(1, MAX_PIXELS),
              help="Pixel budget of one request: streams of larger images are refused from their header, before "
                   "any decoding [default: a 4K frame, 3840x2160; at most 64 MP, the format's limit].")
@click.option("--sink-dir", type=click.Path(file_okay=False),
              help="The server also writes every decoded frame to SINK_DIR/<camera>/<frame>.png (never replacing a file).")
@click.option("--sink-callback", metavar="MODULE:FUNCTION",
              help="The server calls FUNCTION(rgb, info) for every decoded frame (info: model, camera, frame).")
@force_option
def serve_repo(models, output, synthesis, instances, max_batch, queue_delay_us, device, threads, max_stream_bytes,
               max_pixels, sink_dir, sink_callback, force):
    """Write a Triton model repository that decodes the streams of MODELS (one endpoint, roi_decode, picks the
    model by the fingerprint each stream carries)."""
    from ..errors import UsageError
    from ..serve.repository import write_repository
    from ..serve.service import request_limits

    if sink_dir and sink_callback:
        raise UsageError("give --sink-dir or --sink-callback, not both")
    check_output(output, directory=True, beside=True)
    if sink_dir:  # where the server will write (checked again when it starts: it may run elsewhere)
        check_output(sink_dir, directory=True)
    limits = request_limits(max_pixels, max_stream_bytes)
    path = write_repository(list(models), output, synthesis=synthesis, instances=instances, max_batch=max_batch,
                            device=device, queue_delay_us=queue_delay_us, limits=limits, sink_dir=sink_dir,
                            sink_callback=sink_callback, threads=threads, force=force)
    click.echo("wrote {} ({} model{}, synthesis {}): roi-trt serve run {}".format(
        path, len(models), "" if len(models) == 1 else "s", synthesis, path))


@serve.command("run")
@click.argument("repository", type=click.Path(file_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address every endpoint binds to (0.0.0.0 for all interfaces: then use TLS).")
@click.option("--http-port", default=8000, show_default=True, type=click.IntRange(1, 65535),
              help="Triton's HTTP/REST port (health, inference; cameras on Python 3.6 use it).")
@click.option("--grpc-port", default=8001, show_default=True, type=click.IntRange(1, 65535), help="Triton's gRPC port.")
@click.option("--metrics-port", default=8002, show_default=True, type=click.IntRange(1, 65535),
              help="Prometheus metrics port.")
@click.option("--admin-key-file", type=click.Path(dir_okay=False),
              help="File with the key of the 'admin-key' header the administrative APIs require: yours, mode 0600 "
                   "(refused if others may read it), made with a random key if it does not exist; never printed "
                   "[default: $ROI_TRT_ADMIN_KEY, else a random key nobody is told: those APIs stay closed]. Triton "
                   "takes the key on its command line, readable by local users in /proc: run the server where no "
                   "untrusted user logs in, or mount /proc with hidepid=invisible.")
@click.option("--tls-cert", type=click.Path(dir_okay=False, exists=True), help="Server certificate (PEM): gRPC over TLS.")
@click.option("--tls-key", type=click.Path(dir_okay=False, exists=True), help="Its private key (PEM).")
@click.option("--tls-ca", type=click.Path(dir_okay=False, exists=True),
              help="CA of the client certificates: mutual TLS (clients without one are refused).")
@click.option("--tritonserver", type=click.Path(dir_okay=False),
              help="A tritonserver executable [default: the one nvidia-pytriton bundles].")
@click.option("--tensorrt-plugin", type=click.Path(dir_okay=False, exists=True),
              help="GDN1 plugin library for Triton's TensorRT backend (engines built with --gdn plugin).")
@click.option("--log-file", type=click.Path(dir_okay=False), help="Triton's log [default: standard error].")
def serve_run(repository, host, http_port, grpc_port, metrics_port, admin_key_file, tls_cert, tls_key, tls_ca,
              tritonserver, tensorrt_plugin, log_file):
    """Run Triton Inference Server on REPOSITORY until Ctrl-C or SIGTERM (then requests in flight finish)."""
    from ..errors import UsageError
    from ..serve.server import ADMIN_HEADER, ServerOptions, TritonServer, admin_key, serve_forever

    if bool(tls_cert) != bool(tls_key) or (tls_ca and not tls_cert):
        raise UsageError("TLS needs --tls-cert and --tls-key (and --tls-ca only with them)")
    if log_file:
        check_output(log_file, replace=True)
    key, key_source = admin_key(admin_key_file)
    options = ServerOptions(host, http_port, grpc_port, metrics_port, key, tls_cert, tls_key, tls_ca,
                            tensorrt_plugin=tensorrt_plugin)
    server = TritonServer(repository, options, binary=tritonserver, log_file=log_file)
    click.echo("administrative APIs (header '{}'): key {}".format(ADMIN_HEADER, key_source), err=True)
    sys.exit(serve_forever(server, echo=lambda line: click.echo(line, err=True)))


def _camera_name():
    import re

    return re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname())[:64].lstrip(".-_") or "camera"


@click.command()
@click.argument("source")
@click.option("--server", "url", required=True,
              help="http://HOST:8000 (Triton's HTTP protocol, standard library only), https:// (through a TLS proxy), "
                   "grpc://HOST:8001 or grpcs:// (gRPC, needs tritonclient).")
@model_option
@backend_option
@click.option("--size", callback=size_option_value, help="Resize frames first, e.g. 512 or 640x480.")
@click.option("--camera", default=None, help="This camera's name on the server [default: the host name].")
@click.option("--drop", type=click.Choice(("none", "oldest")), default="none", show_default=True,
              help="When the server falls behind: none waits (backpressure), oldest drops the oldest waiting frame. "
                   "Dropped frames are counted and logged.")
@click.option("--queue-size", default=8, show_default=True, type=click.IntRange(1), help="Frames waiting to be encoded.")
@click.option("--retry-for", default=60.0, show_default=True, type=click.FloatRange(0),
              help="Seconds a frame is retried while the server is unreachable (backoff 0.5 s to 30 s); then it goes "
                   "to the spool (without --spool it is lost).")
@click.option("--spool", type=click.Path(file_okay=False),
              help="Keep frames the server cannot take in this directory (sent oldest first once it is back, also by "
                   "a later run with the same --spool, which also resumes a directory SOURCE where this one stopped).")
@click.option("--spool-max-bytes", default="1G", show_default=True, callback=memory_option_value, metavar="SIZE",
              help="Most bytes the spool holds; when full, its oldest frames are dropped (counted and logged).")
@click.option("--drain-for", default=5.0, show_default=True, type=click.FloatRange(0),
              help="After SIGTERM or the first Ctrl-C: seconds to send the frames already captured; the rest are "
                   "spooled.")
@click.option("--idle-exit", type=click.FloatRange(0),
              help="For a directory: stop after this many seconds without a new file [default: run until Ctrl-C].")
@click.option("--tls-ca", type=click.Path(dir_okay=False, exists=True), help="CA that signed the server's certificate.")
@click.option("--tls-cert", type=click.Path(dir_okay=False, exists=True), help="This camera's certificate (mutual TLS).")
@click.option("--tls-key", type=click.Path(dir_okay=False, exists=True), help="Its private key.")
@threads_option
@memory_option
@click.option("--json", "as_json", is_flag=True, help="The counts at the end as one JSON object instead of a line.")
def stream(source, url, model, backend, size, camera, drop, queue_size, retry_for, spool, spool_max_bytes, drain_for,
           idle_exit, tls_ca, tls_cert, tls_key, threads, max_memory, as_json):
    """Encode the frames of SOURCE (a directory being written, a video file, a camera index or a stream URL) and
    send them to the decode service, until the source ends or Ctrl-C. The exit status is 0 when every frame was
    sent, spooled or dropped by policy (the last line counts them), 1 otherwise."""
    import contextlib
    import json
    import threading

    from ..codec import open_codec
    from ..serve.camera import open_source
    from ..serve.camera import stream as run_stream
    from ..serve.client import connect
    from ..serve.service import request_parameters
    from ..serve.spool import Spool

    camera = camera or _camera_name()
    request_parameters({"camera": camera})  # the server's rule for names, checked before anything starts
    stop = threading.Event()

    def log(line):
        click.echo(line, err=True)

    def on_signal(signum, frame):  # the first stops capturing (what was captured is still sent), a second aborts
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        log("stopping: sending the frames already captured for up to {:g} s{} (again to abort)".format(
            drain_for, ", then spooling the rest" if spool else ""))

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)
    with contextlib.ExitStack() as resources:
        frames = resources.enter_context(contextlib.closing(open_source(source, idle_exit=idle_exit)))
        kept = resources.enter_context(Spool(spool, spool_max_bytes)) if spool else None
        codec = resources.enter_context(open_codec(model, backend=backend, parts=("encoder",), threads=threads,
                                                   max_memory=max_memory))
        client = resources.enter_context(connect(url, tls_ca=tls_ca, tls_cert=tls_cert, tls_key=tls_key))
        stats = run_stream(frames, codec, client, camera=camera, size=size, drop=drop, queue_size=queue_size,
                           retry_for=retry_for, log=log, stop=stop, spool=kept, drain_for=drain_for)
    click.echo(json.dumps(stats.as_dict()) if as_json else stats.line())
    if stats.lost:
        sys.exit(1)


COMMANDS = (serve, stream)
