"""Load test of the decode service: a real Triton server on 127.0.0.1, N simulated cameras at once.

Per synthesis mode (a server each) and camera count (1, 4, 16 by default): every camera is a thread with
its own connection (HTTP and gRPC alternately) sending the bundled photos' `.roi` streams (512x512, demo
model), every `--bad-every`-th request a malformed (truncated, corrupt, garbage) or foreign (another
model's fingerprint) stream instead. Checked for every request: each valid stream decoded and equal to
the local decode (max |delta| <= 1/255), each invalid one refused with an error, and each valid frame
decoded exactly once (the server's sink writes one file per (camera, frame) and never replaces one).
Reported: throughput of valid frames, latency percentiles, the batch sizes Triton formed (its
statistics, per run), and the ratio of served throughput to a single-process local decode measured in
the same run, just before each load run (the server idle meanwhile). Bounded: at most `--frames` requests per camera and `--time-limit` seconds per run.

The fault run (`--fault-frames`, a row with `fault` set): the drill of roi_trt.serve.faults with more
frames: `roi-trt stream` processes (HTTP and gRPC alternately, each with a spool) on directories being
written while the server is killed (SIGKILL) and started again and two cameras are killed and started again;
reported: frames written, sink files, whether each was decoded exactly once and equals the local decode,
frames sent from the spools, the outage and how long the spools took to empty after it.

Hostile requests (rows `run` = cost, alone, hostile), per synthesis mode on the same server: the costliest
request a client can send under the default budget (the largest image it admits, 3840x2160, in about the
smallest stream: every latent value at its median, image and sink included) is timed on the idle server
beside an honest frame of `--size` and of 1080p (a bundled photo) and the old worst case (64 MP, refused
now): latency (median of `--cost-repeats`) and server memory (the peak RSS of the server's processes,
summed, and above the idle server's; peaks reset through /proc/PID/clear_refs, Linux). Then
`--hostile-cameras` honest cameras run alone and again while `--hostile-clients` clients send the costly
request back to back: honest latency p50/p95 with hostile requests beside without.

    python benchmarks/serve_load.py --python .cache/triton-venv/bin/python -o benchmarks/results/serve_load.csv [--force]
"""

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time

import numpy as np

from roi_trt import bitstream
from roi_trt.bench.results import output_arguments, parse_arguments, write_rows
from roi_trt.codec import open_codec
from roi_trt.fileio import save_png
from roi_trt.imageio import load_rgb
from roi_trt.samples import sample_photos
from roi_trt.serve.client import Refused, connect
from roi_trt.serve.faults import fault_drill
from roi_trt.serve.repository import write_repository
from roi_trt.serve.server import ServeProcess
from roi_trt.serve.service import DEFAULT_LIMITS

ADMIN_KEY = "load-test"
COSTLIEST, COSTLY = (2160, 3840), "costliest admitted"  # the largest image the default budget admits
HOSTILE_FIELDS = ["request", "image", "stream_bytes", "request_seconds", "server_rss_mb", "server_rss_over_idle_mb",
                  "refused", "time_vs_frame", "time_vs_1080p", "memory_vs_1080p", "latency_p95_ms", "hostile_clients",
                  "hostile_requests", "hostile_seconds", "p50_vs_alone", "p95_vs_alone"]


def valid_streams(size):
    out = []
    with open_codec("demo") as codec:
        for path in sample_photos():
            data, _ = codec.encode(load_rgb(path)[0], (size, size))
            out.append((data, codec.decode(data)[0]))
    return out


def invalid_streams(data):
    header, payload = bitstream.unpack(data)
    corrupt = bytearray(data)
    corrupt[-1] ^= 1
    return [data[:-7], bytes(corrupt), b"\x17" * 64, bitstream.pack(header._replace(fingerprint=bytes(8)), payload)]


def local_rate(valid, seconds=4.0):
    """Frames/s of one process decoding the streams one after another (roi-trt decode's own path)."""
    with open_codec("demo", parts=("decoder",)) as codec:
        codec.decode(valid[0][0])
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            codec.decode(valid[count % len(valid)][0])
            count += 1
        return count / (time.perf_counter() - start)


def batch_counts(stats):
    return {b["batch_size"]: b["compute_infer"]["count"] for b in stats.get("batch_stats", [])}


def run_load(server, cameras, frames, bad_every, valid, invalid, time_limit, sink, prefix="load"):
    """All cameras at once (named `prefix`<cameras>-<k>) -> dict of the run's measurements."""
    before = batch_counts(server.statistics())
    latencies, problems, counts = [], [], {"valid": 0, "invalid": 0, "refused": 0, "max_diff": 0}
    lock = threading.Lock()
    deadline = time.monotonic() + time_limit

    def camera(k):
        name = "{}{}-{}".format(prefix, cameras, k)
        with connect(server.url("http" if k % 2 == 0 else "grpc")) as client:
            for j in range(frames):
                if time.monotonic() > deadline:
                    return
                bad = bad_every and j % bad_every == bad_every - 1
                start = time.perf_counter()
                try:
                    if bad:
                        stream = invalid[(k + j) % len(invalid)]
                        try:
                            client.decode(stream, camera=name, frame=j)
                            problems.append("invalid stream {} of camera {} was decoded".format(j, k))
                        except Refused:
                            with lock:
                                counts["refused"] += 1
                        with lock:
                            counts["invalid"] += 1
                        continue
                    data, local = valid[(k + j) % len(valid)]
                    reply = client.decode(data, camera=name, frame=j, image=True)
                    elapsed = time.perf_counter() - start
                    diff = int(np.abs(reply.image.astype(int) - local.astype(int)).max())
                    with lock:
                        latencies.append(elapsed)
                        counts["valid"] += 1
                        counts["max_diff"] = max(counts["max_diff"], diff)
                except Exception as exc:  # recorded: a load test reports every failure
                    problems.append("camera {} request {}: {}".format(k, j, exc))

    threads = [threading.Thread(target=camera, args=(k,)) for k in range(cameras)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    after = batch_counts(server.statistics())
    batches = {size: after.get(size, 0) - before.get(size, 0) for size in after}
    batches = {size: n for size, n in batches.items() if n}
    written = sum(len(os.listdir(os.path.join(sink, d))) for d in os.listdir(sink)
                  if d.startswith("{}{}-".format(prefix, cameras)))
    lat = np.array(latencies) * 1e3 if latencies else np.array([np.nan])
    executions = sum(batches.values())
    return {
        "cameras": cameras, "requests": counts["valid"] + counts["invalid"], "valid": counts["valid"],
        "invalid": counts["invalid"], "invalid_refused": counts["refused"], "seconds": round(seconds, 3),
        "valid_frames_per_s": round(counts["valid"] / seconds, 3),
        "latency_p50_ms": round(float(np.percentile(lat, 50)), 1), "latency_p90_ms": round(float(np.percentile(lat, 90)), 1),
        "latency_p95_ms": round(float(np.percentile(lat, 95)), 1),
        "latency_p99_ms": round(float(np.percentile(lat, 99)), 1),
        "mean_batch": round(sum(s * n for s, n in batches.items()) / executions, 2) if executions else "",
        "max_batch": max(batches) if batches else "",
        "batches": " ".join("{}x{}".format(s, n) for s, n in sorted(batches.items())),
        "max_abs_diff": counts["max_diff"], "sink_files": written,
        "all_valid_decoded_once": int(counts["valid"] == written and not problems),
        "all_invalid_refused": int(counts["refused"] == counts["invalid"]), "problems": len(problems),
    }, problems


# Columns of the fault run's row (beside synthesis, cameras, seconds, sink_files, max_abs_diff, problems, size).
FAULT_FIELDS = ["fault", "frames", "all_frames_decoded_once", "sent_live", "spool_sent", "recovered",
                "dropped", "camera_kills", "server_down_s", "backlog_s"]


def run_faults(python, work, cameras, frames, size=128, interval=0.2, outage=10.0):
    """The fault drill on a server of its own, down for `outage` seconds, cameras writing a `size`-square frame
    each `interval` seconds -> (CSV row, problems)."""
    sink = os.path.join(work, "fault-sink")
    repo = write_repository(["demo"], os.path.join(work, "fault-repo"), sink_dir=sink)
    drill = os.path.join(work, "fault-drill")
    os.makedirs(drill)
    with ServeProcess(python, repo, work, ADMIN_KEY) as server:
        result = fault_drill(server, sink, drill, cameras=cameras, frames=frames, size=size, interval=interval,
                             outage=outage, log=print)
    row = {"synthesis": "inprocess", "fault": "server killed, down {:g} s; 2 cameras killed".format(outage),
           "cameras": cameras, "frames": result["frames"], "size": size, "seconds": result["seconds"],
           "sink_files": result["sink_files"], "max_abs_diff": result["max_abs_diff"],
           "all_frames_decoded_once": result["passed"], "sent_live": result["sent"],
           "spool_sent": result["spool_sent"], "recovered": result["recovered"], "dropped": result["dropped"],
           "camera_kills": result["camera_kills"], "server_down_s": result["server_down_s"],
           "backlog_s": result["backlog_s"], "problems": len(result["problems"])}
    return row, result["problems"]


def server_memory(pid):
    """{pid: (RSS, peak RSS) in bytes} of the server's processes: `serve run` (pid), tritonserver, its stubs."""
    out, todo = {}, [pid]
    while todo:
        pid = todo.pop()
        try:
            with open("/proc/{}/status".format(pid)) as f:
                status = dict(line.split(":", 1) for line in f)
            for task in os.listdir("/proc/{}/task".format(pid)):  # a child is listed under the thread that forked it
                with open("/proc/{}/task/{}/children".format(pid, task)) as f:
                    todo += [int(child) for child in f.read().split()]
        except OSError:  # it ended meanwhile
            continue
        out[pid] = tuple(int(status[key].split()[0]) * 1024 for key in ("VmRSS", "VmHWM"))
    return out


def reset_peaks(pids):
    """Peak RSS := RSS, for each process (Linux: /proc/PID/clear_refs)."""
    for pid in pids:
        try:
            with open("/proc/{}/clear_refs".format(pid), "w") as f:
                f.write("5")
        except OSError:
            pass


def request_cost(server, stream, repeats):
    """One request at a time on the idle server -> (median seconds, largest peak server RSS, refused)."""
    seconds, peaks, refused = [], [], False
    with connect(server.url(), timeout=600) as client:
        for _ in range(repeats):
            reset_peaks(server_memory(server.process.pid))
            start = time.perf_counter()
            try:
                client.decode(stream, image=True)
            except Refused:
                refused = True
            seconds.append(time.perf_counter() - start)
            peaks.append(sum(hwm for _, hwm in server_memory(server.process.pid).values()))
    return float(np.median(seconds)), max(peaks), refused


def cost_requests(size, frame_stream):
    """{label: ((height, width), stream)}, cheapest first: a frame of `size`, the old default's worst case
    (refused now), a 1080p photo and the costliest request the default budget admits."""
    assert COSTLIEST[0] * COSTLIEST[1] <= DEFAULT_LIMITS.max_pixels
    with open_codec("demo", parts=("encoder",)) as codec:
        return {"frame": ((size, size), frame_stream),
                "64 MP (old default)": ((8192, 8192), codec.streams.median_stream(8192, 8192)),
                "frame 1080p": ((1080, 1920), codec.encode(load_rgb(sample_photos()[0])[0], (1080, 1920))[0]),
                COSTLY: (COSTLIEST, codec.streams.median_stream(*COSTLIEST))}


def cost_rows(server, requests, repeats):
    """What each of `requests` costs the idle server, against a frame and a 1080p frame: time, and peak server
    RSS above the idle server's (the requests come cheapest first, so what an earlier one left allocated is
    no more than a later one needs) -> (rows, problems: a request decoded beyond the default budget or
    refused within it)."""
    rows, problems = [], []
    idle = sum(rss for rss, _ in server_memory(server.process.pid).values())
    for label, ((height, width), stream) in requests.items():
        seconds, peak, refused = request_cost(server, stream, repeats)
        if refused != (height * width > DEFAULT_LIMITS.max_pixels):
            problems.append("{} ({}x{}) was {}".format(label, width, height, "refused" if refused else "decoded"))
        rows.append({"run": "cost", "request": label, "image": "{}x{}".format(width, height),
                     "stream_bytes": len(stream), "requests": repeats, "request_seconds": round(seconds, 3),
                     "server_rss_mb": round(peak / 2 ** 20, 1),
                     "server_rss_over_idle_mb": round((peak - idle) / 2 ** 20, 1), "refused": int(refused)})
    frame, hd = (next(row for row in rows if row["request"] == label) for label in ("frame", "frame 1080p"))
    for row in rows:
        row.update(time_vs_frame=round(row["request_seconds"] / frame["request_seconds"], 2),
                   time_vs_1080p=round(row["request_seconds"] / hd["request_seconds"], 2),
                   memory_vs_1080p=round(row["server_rss_over_idle_mb"] / hd["server_rss_over_idle_mb"], 2))
    return rows, problems


def hostile_rows(server, cameras, clients, frames, valid, costly, time_limit, sink):
    """Honest cameras alone, then again while `clients` send the costly request back to back -> (rows, problems)."""
    alone, problems = run_load(server, cameras, frames, 0, valid, [], time_limit, sink, prefix="alone")
    stop, hostile = threading.Event(), []

    def attacker(k):
        with connect(server.url("http" if k % 2 == 0 else "grpc"), timeout=600) as client:
            while not stop.is_set():
                start = time.perf_counter()
                try:
                    client.decode(costly, image=True)
                    hostile.append(time.perf_counter() - start)
                except Exception as exc:  # recorded: the costly request is a valid one
                    problems.append("hostile client {}: {}".format(k, exc))
                    return

    threads = [threading.Thread(target=attacker, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    time.sleep(0.5)  # the costly requests are in the server's queue first
    under, more = run_load(server, cameras, frames, 0, valid, [], time_limit, sink, prefix="hostile")
    done = len(hostile)
    stop.set()
    for t in threads:
        t.join()
    alone["run"], under["run"] = "alone", "hostile"
    under.update(hostile_clients=clients, hostile_requests=done,
                 hostile_seconds=round(float(np.median(hostile)), 3) if hostile else "",
                 p50_vs_alone=round(under["latency_p50_ms"] / alone["latency_p50_ms"], 2),
                 p95_vs_alone=round(under["latency_p95_ms"] / alone["latency_p95_ms"], 2))
    alone["hostile_clients"] = 0
    return [alone, under], problems + more


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    for mode in sorted(set(r["synthesis"] for r in rows)):
        mine = [r for r in rows if r["synthesis"] == mode]
        cams = [r["cameras"] for r in mine]
        ax1.plot(cams, [r["valid_frames_per_s"] for r in mine], "o-", label="served, synthesis " + mode)
        ax2.plot(cams, [r["latency_p50_ms"] for r in mine], "o-", label="p50, " + mode)
        ax2.plot(cams, [r["latency_p99_ms"] for r in mine], "s--", label="p99, " + mode)
    ax1.axhline(float(np.median([r["local_frames_per_s"] for r in rows])), color="gray", ls=":",
                label="one local process (median)")
    ax1.set(xlabel="cameras", ylabel="decoded frames/s", xscale="log", ylim=(0, None), title="throughput")
    ax2.set(xlabel="cameras", ylabel="ms per request", xscale="log", yscale="log", title="latency")
    for ax in (ax1, ax2):
        ax.set_xticks(sorted(set(r["cameras"] for r in rows)))
        ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_png(fig, path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=os.path.join(".cache", "triton-venv", "bin", "python"),
                        help="A Python with nvidia-pytriton and roi_trt installed (the tests make .cache/triton-venv).")
    parser.add_argument("--cameras", default="1,4,16")
    parser.add_argument("--synthesis", default="inprocess,python", help="Comma list of --synthesis modes to serve.")
    parser.add_argument("--frames", type=int, default=12, help="Requests per camera.")
    parser.add_argument("--bad-every", type=int, default=4, help="Every k-th request is invalid (0: none).")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--time-limit", type=float, default=120.0, help="Seconds per run at most.")
    parser.add_argument("--fault-frames", type=int, default=200, help="Frames per camera in the fault run (0: none).")
    parser.add_argument("--fault-cameras", type=int, default=4, help="Cameras in the fault run.")
    parser.add_argument("--cost-repeats", type=int, default=3, help="Requests of each kind timed alone.")
    parser.add_argument("--hostile-cameras", type=int, default=4, help="Honest cameras beside the hostile clients.")
    parser.add_argument("--hostile-clients", type=int, default=1,
                        help="Clients sending the costliest admitted request back to back (0: no hostile rows).")
    output_arguments(parser, "serve_load.csv")
    args = parse_arguments(parser)

    valid = valid_streams(args.size)
    invalid = invalid_streams(valid[0][0])
    requests = cost_requests(args.size, valid[0][0]) if args.hostile_clients else None
    rows, failures = [], []
    work = tempfile.mkdtemp(prefix="roi-trt-load-")
    try:
        for mode in args.synthesis.split(","):
            sink = os.path.join(work, mode + "-sink")
            repo = write_repository(["demo"], os.path.join(work, mode), synthesis=mode, max_batch=args.max_batch,
                                    sink_dir=sink)
            os.makedirs(sink)
            with ServeProcess(args.python, repo, work, ADMIN_KEY) as server:
                for cameras in (int(c) for c in args.cameras.split(",")):
                    local = local_rate(valid)
                    row, problems = run_load(server, cameras, args.frames, args.bad_every, valid, invalid,
                                             args.time_limit, sink)
                    row = dict(row, synthesis=mode, run="load", local_frames_per_s=round(local, 3),
                               ratio_to_local=round(row["valid_frames_per_s"] / local, 3), size=args.size)
                    rows.append(row)
                    failures += problems
                    print("{synthesis:9s} {cameras:3d} cameras: {valid_frames_per_s:6.2f} frames/s ({ratio_to_local:.2f}x "
                          "local), p50 {latency_p50_ms} ms p99 {latency_p99_ms} ms, batches {batches}, invalid refused "
                          "{invalid_refused}/{invalid}, decoded once {all_valid_decoded_once}".format(**row))
                if args.hostile_clients:
                    costs, problems = cost_rows(server, requests, args.cost_repeats)
                    runs, more = hostile_rows(server, args.hostile_cameras, args.hostile_clients, args.frames,
                                              valid, requests[COSTLY][1], args.time_limit, sink)
                    failures += problems + more
                    for row in costs:
                        print("{:9s} cost of {request:20s} {image:>9s} {stream_bytes:8d} B: {request_seconds:7.3f} s "
                              "({time_vs_1080p}x 1080p, {time_vs_frame}x frame), server RSS {server_rss_mb} MB, "
                              "+{server_rss_over_idle_mb} MB over idle ({memory_vs_1080p}x 1080p), "
                              "refused {refused}".format(mode, **row))
                    for row in runs:
                        print("{:9s} {run:7s} {cameras} cameras, {hostile_clients} hostile: p50 {latency_p50_ms} ms "
                              "p95 {latency_p95_ms} ms".format(mode, **row))
                    rows += [dict(row, synthesis=mode, size=args.size) for row in costs + runs]
        if args.fault_frames:
            row, problems = run_faults(args.python, work, args.fault_cameras, args.fault_frames)
            rows.append(row)
            failures += problems
            print("fault run: {frames} frames of {cameras} cameras, {sink_files} in the sink, decoded once "
                  "{all_frames_decoded_once}, max |diff| {max_abs_diff}; {spool_sent} sent from spools, server down "
                  "{server_down_s} s, spools empty {backlog_s} s after".format(**row))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    fields = ["synthesis", "cameras", "requests", "valid", "invalid", "invalid_refused", "seconds", "valid_frames_per_s",
              "local_frames_per_s", "ratio_to_local", "latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "mean_batch",
              "max_batch", "batches", "max_abs_diff", "sink_files", "all_valid_decoded_once", "all_invalid_refused",
              "problems", "size", "run"]
    write_rows(args.output, fields + FAULT_FIELDS + HOSTILE_FIELDS, rows, replace=args.force)
    plot([r for r in rows if r.get("run") == "load"], os.path.splitext(args.output)[0] + ".png")
    for line in failures[:20]:
        print("problem:", line)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
