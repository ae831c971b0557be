#!/usr/bin/env python3
"""Dashboard overhead: one training config run with --no-dashboard, with the dashboard and no client, and with the
dashboard streaming /api/events to a client. Runs are interleaved so machine noise hits all three alike. Per run it
takes the fastest epoch's train seconds (from --metrics-out; on a shared machine the least disturbed epoch is the
best estimate of the work) over the steady epochs (the first two, with JIT warm-up, are left out) and the process's
CPU seconds; it prints each mode's median over the runs.
Then, because wall time on a loaded machine is noisy, it samples per-thread CPU time (/proc) over 10 s of steady
training with 0, 1 and 20 event-stream clients: the training thread against all the dashboard's threads.
Usage: measure-overhead.py [REPEATS] [EPOCHS]   (builds coordinator in Release first)"""
import json, os, re, resource, statistics, subprocess, sys, tempfile, threading, time, urllib.request

root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 5
epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 12
subprocess.run(["dotnet", "build", "coordinator", "-c", "Release", "-v", "q", "-nologo"], cwd=root, check=True,
               stdout=subprocess.DEVNULL)
dll = os.path.join(root, "coordinator", "bin", "Release", "net10.0", "disttrain.dll")
work = tempfile.mkdtemp()
config = os.path.join(work, "config.json")
# MNIST-shaped (784-128-10, batch 128, like examples/lecture-mnist.json's model) on synthetic data, one thread.
with open(config, "w") as f:
    json.dump({
        "model": {"inputs": 784, "layers": [{"type": "linear", "units": 128}, {"type": "relu"},
                                           {"type": "linear", "units": 10}], "loss": "softmax_cross_entropy"},
        "data": {"format": "blobs", "samples": 20000, "features": 784, "classes": 10, "seed": 3, "scale": 1},
        "optimizer": {"type": "adam", "learningRate": 0.001},
        "training": {"epochs": epochs, "batchSize": 128, "shardSize": 64, "seed": 5, "threads": 1}}, f)


def follow_events(url, stop):
    # One live page's worth of traffic: read the event stream until the run ends.
    try:
        with urllib.request.urlopen(url + "api/events", timeout=60) as stream:
            while not stop.is_set() and stream.readline():
                pass
    except Exception:
        pass


def run(mode):
    metrics = os.path.join(work, "m.jsonl")
    if os.path.exists(metrics):
        os.remove(metrics)
    args = ["dotnet", dll, "train", "--config", config, "--metrics-out", metrics]
    args += ["--no-dashboard"] if mode == "off" else ["--dashboard-port", "0"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stop, client = threading.Event(), None
    if mode != "off":
        for line in process.stderr:
            m = re.search(r"dashboard: (http://\S+/)", line)
            if m:
                if mode == "client":
                    client = threading.Thread(target=follow_events, args=(m.group(1), stop), daemon=True)
                    client.start()
                break
    process.stderr.read()
    process.wait()
    stop.set()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    with open(metrics) as f:
        epochs = [json.loads(line)["train_seconds"] for line in f]
    return min(epochs[2:] or epochs), cpu


results = {"off": [], "idle": [], "client": []}
for r in range(repeats):
    for mode in results:
        train, cpu = run(mode)
        results[mode].append((train, cpu))
        print(f"repeat {r + 1}  {mode:6}  epoch_train_seconds {train:7.4f}  cpu_seconds {cpu:6.2f}", flush=True)

base_train = statistics.median(t for t, _ in results["off"])
base_cpu = statistics.median(c for _, c in results["off"])
for mode, label in (("off", "no dashboard"), ("idle", "dashboard, no client"), ("client", "dashboard + SSE client")):
    train = statistics.median(t for t, _ in results[mode])
    cpu = statistics.median(c for _, c in results[mode])
    print(f"median {label:24} epoch_train_seconds {train:7.4f} ({(train / base_train - 1) * 100:+6.2f}%)"
          f"  process cpu_seconds {cpu:6.2f} ({(cpu / base_cpu - 1) * 100:+6.2f}%)")


def thread_cpu(pid):
    # utime + stime of every thread of the process, by thread id.
    result, tick = {}, os.sysconf("SC_CLK_TCK")
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            result[tid] = (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError):
            pass
    return result


long_config = os.path.join(work, "long.json")
with open(config) as f:
    settings = json.load(f)
settings["training"]["epochs"] = 1000
with open(long_config, "w") as f:
    json.dump(settings, f)
for clients in (0, 1, 20):
    process = subprocess.Popen(["dotnet", dll, "train", "--config", long_config, "--dashboard-port", "0"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in process.stderr:
        m = re.search(r"dashboard: (http://\S+/)", line)
        if m:
            break
    stop = threading.Event()
    for _ in range(clients):
        threading.Thread(target=follow_events, args=(m.group(1), stop), daemon=True).start()
    time.sleep(25)  # past the JIT tail: tier-1 recompilation of the HTTP/JSON paths takes ~20 s at 4 pushes/s
    a = thread_cpu(process.pid)
    time.sleep(10)
    b = thread_cpu(process.pid)
    process.kill()
    process.wait()
    stop.set()
    main = str(process.pid)
    training = b[main] - a.get(main, 0)
    others = sum(v - a.get(t, 0) for t, v in b.items() if t != main)
    print(f"steady 10 s with {clients:2} event clients: training thread cpu {training:5.2f} s, "
          f"all other threads {others:4.2f} s ({others / max(training, 1e-9) * 100:.2f}% of the training thread)")
