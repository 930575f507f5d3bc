#!/usr/bin/env python3
"""Benchmarks of the release agent on the mock NVML. Prints figures; asserts nothing in tests.

    bench.py compare [--seconds 60]   (default) the agent beside the peer exporter
                                      (benches/peer/), both on the same mock with the H200
                                      cost model and the same fake node, on the two
                                      benchmark nodes (NODES); prints PASS/FAIL against its targets
    bench.py compare --dcgm           the same nodes with GPUs without GPM, whose profiling the
                                      agent reads from the mock DCGM (libdcgm_mock.so)
    bench.py core [--gpus 8 --processes 64 --interval-ms 200 --costs none]
                                      the agent alone: CPU per cycle, RSS, sequential
                                      /metrics latency (the agent-core figures)

CPU time is read from /proc/<pid>/task/*/schedstat (nanoseconds on CPU, every thread), so it
includes everything a process does: with `costs: h200` the mock burns each NVML call's CPU in
the calling thread, as the real driver does (vendor-mocks/nvml-mock/README.md, "Costs").
"""
import argparse, http.client, os, random, shutil, signal, socket, subprocess, sys, tempfile, threading, time

# --- the fake node ----------------------------------------------------------------------

# Profiling from DCGM (`--dcgm`): the GPUs have no GPM, and DCGM's fields in its place.
DCGM_PROFILING = ('    dcgm_profiling: {graphics_active: 0.9, sm_active: 0.6, sm_occupancy: 0.4, tensor_active: 0.3,'
                  ' dram_active: 0.5, fp64_active: 0.0, fp32_active: 0.1, fp16_active: 0.05}')
GPM = '    gpm: {sm_active: 0.6, sm_occupancy: 0.4, tensor_active: 0.3, dram_active: 0.5}'


def device_yaml(g, processes, costly_health=True, dcgm=False):
    """One H200 as the bench node has it: every family the real one answered (the mock's README, "Costs").
    With `dcgm`, its profiling comes from DCGM instead of GPM (as on a GPU before Hopper)."""
    out = [
        f'  - uuid: GPU-00000000-0000-4000-8000-{g:012x}',
        '    name: NVIDIA H200',
        f'    pci_bus_id: "00000000:{0x18 + g:02X}:00.0"',
        '    memory_total_bytes: 150754820096',
        '    memory_used_bytes: 40265318400',
        '    utilization_gpu_percent: 87',
        '    utilization_memory_percent: 45',
        '    power_milliwatts: 350000',
        '    temperature_celsius: 61',
        '    sm_clock_mhz: 1980',
        '    process_utilization: supported',
        *(['    gpm: null', DCGM_PROFILING] if dcgm else [GPM]),
    ]
    if costly_health:
        out += [
            '    energy_millijoules: 123456789',
            '    ecc: {corrected: 0, uncorrected: 0}',
            '    xid_events: []',
            '    throttle_reasons: []',
            '    pcie: {tx_kib_per_second: 1200000, rx_kib_per_second: 800000, replay_errors: 0}',
            '    nvlink: {tx_bytes: 5368709120, rx_bytes: 4294967296}',
            '    encoder_percent: 0',
            '    decoder_percent: 0',
            # dcgm-exporter's counters, which an H200 reports too.
            '    memory_clock_mhz: 3201',
            '    memory_temperature_celsius: 45',
            '    power_limit_milliwatts: 700000',
            '    remapped_rows: {correctable: 0, uncorrectable: 0, pending: false, failure: false}',
            '    violations_ns: {power: 0, thermal: 0, sync_boost: 0, board_limit: 0, low_utilization: 0, reliability: 0}',
        ]
    out.append('    processes:' + ('' if processes else ' []'))
    for pid, sm in processes:
        out.append(f'      - {{pid: {pid}, used_memory_bytes: 4000000000, sm_util_percent: {sm}, mem_util_percent: 10}}')
    return out


def node_layout(gpus, pods_per_gpu, procs_per_pod, first_pid=100000):
    """[(gpu, pod index, [pids])]: pods spread evenly over the GPUs."""
    layout, pid, pod = [], first_pid, 0
    for g in range(gpus):
        for _ in range(pods_per_gpu):
            layout.append((g, pod, list(range(pid, pid + procs_per_pod))))
            pid += procs_per_pod
            pod += 1
    return layout


# The driver's buffer of per-process utilization samples (the mock's
# `process_utilization_buffer`): a sample every 1/6 s, the shortest utilization sample period
# nvidia-smi documents, and 100 kept (~17 s). NVML documents no depth (one user reports 4,096
# samples); 100 is the cautious side. A reader that waits longer than the buffer between
# two reads loses samples, and the mock says so on stderr: the comparison counts those lines.
SAMPLE_BUFFER = 'process_utilization_buffer: {period_ms: 167, samples: 100}'
LOST = 'sample buffer before this read'
# The agent runs as the NVIDIA DaemonSet runs it (daemonset/agents/nvidia: the AMD collector
# off on NVIDIA nodes).
AGENT_ARGS = ['--no-collector.amd', '--log.level=warn']


def scenario(gpus, layout, costs, health=True, dcgm=False):
    out = [f'costs: {costs}', SAMPLE_BUFFER, 'driver_version: "580.159.04"', 'devices:']
    for g in range(gpus):
        procs = [(pid, 80 // max(1, len(pids) * sum(1 for x in layout if x[0] == g)))
                 for (gg, _, pids) in layout if gg == g for pid in pids]
        out += device_yaml(g, procs, health, dcgm)
    return '\n'.join(out) + '\n'


def uid(i):
    return f'{i:08x}-0000-4000-8000-{i:012x}'


def build_node(root, layout):
    """A host as a fake node (docs/design.md) lays it out: cgroup v2, systemd driver, containerd."""
    os.makedirs(os.path.join(root, 'var/log/containers'), exist_ok=True)
    os.makedirs(os.path.join(root, 'proc/1'), exist_ok=True)  # every procfs has a pid 1
    for _, p, pids in layout:
        u, pod, cid = uid(p), f'vllm-{p}', f'{p:064x}'
        os.makedirs(os.path.join(root, f'var/log/pods/llm_{pod}_{u}/server'), exist_ok=True)
        os.symlink(f'/var/log/pods/llm_{pod}_{u}/server/0.log',
                   os.path.join(root, f'var/log/containers/{pod}_llm_server-{cid}.log'))
        for pid in pids:
            d = os.path.join(root, f'proc/{pid}')
            os.makedirs(d)
            with open(os.path.join(d, 'cgroup'), 'w') as f:
                f.write('0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod'
                        f'{u.replace("-", "_")}.slice/cri-containerd-{cid}.scope\n')
            with open(os.path.join(d, 'comm'), 'w') as f:
                f.write('python3\n')

# --- measuring a process ------------------------------------------------------------------

def cpu_ns(pid):
    total = 0
    for t in os.listdir(f'/proc/{pid}/task'):
        try:
            with open(f'/proc/{pid}/task/{t}/schedstat') as f:
                total += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def rss_kib(pid):
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    return 0


def mapping_rss_kib(pid, name):
    """The resident KiB of the file mappings of `name` (a library: its code and data pages)."""
    total, ours = 0, False
    with open(f'/proc/{pid}/smaps') as f:
        for line in f:
            head = line.split()
            if head and '-' in head[0] and len(head) >= 5 and ':' in head[3]:
                ours = len(head) > 5 and os.path.basename(head[5]) == name
            elif ours and line.startswith('Rss:'):
                total += int(head[1])
    return total


def free_port():
    s = socket.socket(); s.bind(('127.0.0.1', 0)); p = s.getsockname()[1]; s.close(); return p


def get(port, path, timeout=5):
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=timeout)
    try:
        c.request('GET', path); r = c.getresponse(); body = r.read()
        return r.status, body.decode(errors='replace')
    finally:
        c.close()


def wait_until(proc, port, path, ok, what, started, limit=30):
    while True:
        if proc.poll() is not None:
            sys.exit(f'{what} exited with {proc.returncode} before it was ready')
        try:
            status, body = get(port, path)
            if ok(status, body):
                return time.time() - started
        except OSError:
            pass
        if time.time() - started > limit:
            sys.exit(f'{what} was not ready after {limit} s')
        time.sleep(0.005)


def scrapers(port, clients, period, seconds):
    """`clients` scrapers, each on its own connection (kept alive where the server allows),
    each scraping every `period` seconds from a random phase, for `seconds`: the load of many
    Prometheus servers, an open loop. Latencies in ms, sorted. Over 5 s, so that the window
    holds one sampling cycle."""
    lat, lock = [], threading.Lock()
    begin = time.monotonic() + 0.05

    def run(phase):
        conn = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
        mine, at = [], begin + phase
        while at < begin + seconds:
            time.sleep(max(0.0, at - time.monotonic()))
            s = time.perf_counter()
            conn.request('GET', '/metrics', headers={'Accept': 'text/plain'})
            r = conn.getresponse(); r.read()
            mine.append((time.perf_counter() - s) * 1000)
            if r.will_close:
                conn.close()
            at += period
        conn.close()
        with lock:
            lat.extend(mine)

    old = sys.getswitchinterval()
    sys.setswitchinterval(0.0002)  # the client's GIL must not make the server look slow
    threads = [threading.Thread(target=run, args=(random.random() * period,)) for _ in range(clients)]
    for t in threads: t.start()
    for t in threads: t.join()
    sys.setswitchinterval(old)
    return sorted(lat)


def burst(port, clients, total):
    """`total` scrapes, `clients` at a time back to back (a closed loop: each latency includes
    waiting for the others), with curl's parallel mode so the client adds no queueing of its
    own. Latencies in ms, sorted; None without curl."""
    if not shutil.which('curl'):
        return None
    url = f'http://127.0.0.1:{port}/metrics'
    args = ['curl', '-s', '--parallel', '--parallel-immediate', '--parallel-max', str(clients),
            '-H', 'Accept: text/plain', '-w', '%{time_total}\n']
    for _ in range(total):
        args += [url, '-o', '/dev/null']
    out = subprocess.run(args, capture_output=True, text=True, timeout=120).stdout.split()
    return sorted(float(x) * 1000 for x in out) or None


def q(lat, p):
    return lat[min(len(lat) - 1, int(p * len(lat)))]


def series(body, own):
    """(all samples, the exporter's GPU samples) in a /metrics body."""
    lines = [l for l in body.splitlines() if l and not l.startswith('#')]
    return len(lines), sum(1 for l in lines if own(l))


def agent_series(l):
    return (l.startswith('gpu_') or l.startswith('pod_')) and not l.startswith('gpu_pod_exporter_')

# --- compare: the agent beside the peer -----------------------------------------------------

NODES = [
    # name, GPUs, pods per GPU, processes per pod, CPU target (% of a core), RSS target (MiB),
    # peer-to-agent CPU ratio target
    ('reference: 8 GPUs, 64 processes in 32 pods', 8, 4, 2, 0.8, 10.0, 1.5),
    ('8 GPUs, one pod each', 8, 1, 1, 0.3, None, 3.0),
]


def compare(a):
    lib = os.path.join(a.target, 'libnvidia_ml_mock.so')
    binary = os.path.join(a.target, 'gpu-pod-exporter')
    dcgm_lib = os.path.join(a.target, 'libdcgm_mock.so')
    dcgm_args = [f'--dcgm.address=127.0.0.1:5555', f'--dcgm.library={dcgm_lib}'] if a.dcgm else []
    for f in (lib, binary, a.peer_python) + ((dcgm_lib,) if a.dcgm else ()):
        if not os.path.exists(f):
            sys.exit(f'missing {f}: run scripts/bench.sh, which builds and installs what this needs')
    peer_script = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'benches', 'peer', 'peer_exporter.py')
    checks = []
    print(f'agent ({binary}) and peer (benches/peer/peer_exporter.py, nvidia-ml-py + prometheus_client),')
    print(f'both on the mock NVML with `costs: {a.costs}` and the same fake node; interval {a.interval_s:g} s,')
    print(f'CPU over {a.seconds:g} s after warm-up (schedstat, all threads).')
    print(f'/metrics: {a.clients} scrapers, each every {a.scrape_period * 1000:g} ms from a random phase, for {a.scrape_seconds:g} s')
    print(f'(the target\'s load); "burst": {a.burst} scrapes, {a.clients} at a time back to back (curl), where')
    print(f'each latency includes waiting for the other {a.clients - 1}.')
    print('CPU is % of one core. RSS excludes real NVML\'s own ~18 MiB (docs/measurements.md), which the mock does not have.')
    if a.dcgm:
        print('DCGM on: the GPUs have no GPM; the agent reads their profiling fields from the mock DCGM'
              ' (one bulk read per cycle, `costs` as the mock\'s table assumes them).')
    for name, gpus, pods_per_gpu, procs_per_pod, cpu_target, rss_target, ratio_target in NODES:
        d = tempfile.mkdtemp(prefix='gpe-bench-')
        try:
            layout = node_layout(gpus, pods_per_gpu, procs_per_pod)
            sc = os.path.join(d, 'scenario.yaml')
            with open(sc, 'w') as f:
                f.write(scenario(gpus, layout, a.costs, dcgm=a.dcgm))
            root = os.path.join(d, 'node')
            build_node(root, layout)
            time.sleep(2.1)  # past the mock's re-read window for a fresh file (README, "reload")
            env = dict(os.environ, MOCK_NVML_SCENARIO=sc)
            aport, pport = free_port(), free_port()
            t0 = time.time()
            res, log_end = {}, {}
            logs = {who: open(os.path.join(d, f'{who}.log'), 'w+') for who in ('agent', 'peer')}
            agent = subprocess.Popen([
                binary, f'--web.listen-address=127.0.0.1:{aport}', f'--nvml.library={lib}',
                f'--path.rootfs={root}', f'--collect.interval={a.interval_s:g}s', *AGENT_ARGS,
                *dcgm_args,
            ], env=env, stderr=logs['agent'])
            try:
                agent_ready = wait_until(agent, aport, '/readyz', lambda s, b: s == 200, 'the agent', t0)
                t1 = time.time()
                peer = subprocess.Popen([
                    a.peer_python, peer_script, f'--nvml-library={lib}', f'--rootfs={root}',
                    '--address=127.0.0.1', f'--port={pport}', f'--interval={a.interval_s:g}',
                ], env=env, stderr=logs['peer'])
                try:
                    peer_ready = wait_until(peer, pport, '/metrics',
                                            lambda s, b: s == 200 and 'peer_gpu_utilization_ratio{' in b, 'the peer', t1)
                    time.sleep(a.warmup)
                    c0 = {p.pid: cpu_ns(p.pid) for p in (agent, peer)}
                    w0 = time.time()
                    time.sleep(a.seconds)
                    c1 = {p.pid: cpu_ns(p.pid) for p in (agent, peer)}
                    window = time.time() - w0
                    # Lost samples are counted over the CPU window: the latency phase below stops
                    # each process for a while, which no real node does.
                    log_end = {who: os.fstat(log.fileno()).st_size for who, log in logs.items()}
                    for who, p, port, own, other in (
                            ('agent', agent, aport, agent_series, peer),
                            ('peer', peer, pport, lambda l: l.startswith('peer_'), agent)):
                        cpu = (c1[p.pid] - c0[p.pid]) / 1e9 / window * 100
                        rss = rss_kib(p.pid) / 1024
                        # The mock DCGM's own pages stand for the real library's, which the bench
                        # cannot model (as real NVML's own ~18 MiB): shown apart.
                        dcgm_rss = mapping_rss_kib(p.pid, 'libdcgm_mock.so') / 1024
                        _, body = get(port, '/metrics')
                        total, own_n = series(body, own)
                        by_dcgm = sum(1 for l in body.splitlines()
                                      if l.startswith('gpu_profiling_info{') and 'source="dcgm"' in l)
                        # Latency is each exporter's alone, as on a node that runs one of them:
                        # the other is stopped meanwhile (its sampling bursts would otherwise
                        # land in the window by chance on this 2-core machine).
                        os.kill(other.pid, signal.SIGSTOP)
                        try:
                            lat = scrapers(port, a.clients, a.scrape_period, a.scrape_seconds)
                            bur = burst(port, a.clients, a.burst)
                        finally:
                            os.kill(other.pid, signal.SIGCONT)
                        res[who] = dict(cpu=cpu, rss=rss, total=total, own=own_n, lat=lat,
                                        burst=bur, per_cycle=cpu / 100 * a.interval_s * 1000,
                                        dcgm=by_dcgm, dcgm_rss=dcgm_rss)
                finally:
                    peer.terminate(); peer.wait()
            finally:
                agent.terminate(); agent.wait()
            for who, log in logs.items():
                log.seek(0)
                if who in res:
                    text = log.read(log_end.get(who, 0))
                    res[who]['lost'] = sum(1 for line in text.splitlines() if LOST in line)
                log.close()
        finally:
            shutil.rmtree(d, ignore_errors=True)

        ag, pe = res['agent'], res['peer']
        print()
        print(f'== {name}, {sum(len(p) for *_, p in layout)} GPU processes, {len(layout)} pods')
        print(f'{"":34}{"agent":>14}{"peer":>14}{"peer/agent":>12}')
        row = lambda label, x, y, fmt, ratio=True: print(
            f'{label:34}{fmt.format(x):>14}{fmt.format(y):>14}{(f"{y / x:.2f}" if ratio and x else ""):>12}')
        row('CPU (% of one core)', ag['cpu'], pe['cpu'], '{:.3f}')
        row('CPU per cycle (ms)', ag['per_cycle'], pe['per_cycle'], '{:.2f}')
        row('RSS (MiB)', ag['rss'], pe['rss'], '{:.1f}')
        row('GPU series served', ag['own'], pe['own'], '{:d}')
        row('all samples in /metrics', ag['total'], pe['total'], '{:d}')
        row(f'/metrics p50, {a.clients} scrapers (ms)', q(ag['lat'], 0.5), q(pe['lat'], 0.5), '{:.2f}')
        row(f'/metrics p99, {a.clients} scrapers (ms)', q(ag['lat'], 0.99), q(pe['lat'], 0.99), '{:.2f}')
        if ag['burst'] and pe['burst']:
            row(f'/metrics p50, burst of {a.clients} (ms)', q(ag['burst'], 0.5), q(pe['burst'], 0.5), '{:.2f}')
            row(f'/metrics p99, burst of {a.clients} (ms)', q(ag['burst'], 0.99), q(pe['burst'], 0.99), '{:.2f}')
        row('start to ready (ms)', agent_ready * 1000, peer_ready * 1000, '{:.0f}', ratio=False)
        row('reads that lost buffered samples', ag['lost'], pe['lost'], '{:d}', ratio=False)
        short = name.split(':')[0]
        if a.dcgm:
            row('GPUs profiled through DCGM', ag['dcgm'], 0, '{:d}', ratio=False)
            row('RSS of libdcgm_mock.so\'s pages (MiB)', ag['dcgm_rss'], 0.0, '{:.1f}', ratio=False)
            checks.append((f'{short}: every GPU profiled through DCGM ({ag["dcgm"]} of {gpus})', ag['dcgm'] == gpus))
            if rss_target:
                own = ag['rss'] - ag['dcgm_rss']
                checks.append((f'{short}: agent RSS without the DCGM library\'s own pages {own:.1f} MiB < {rss_target:g} MiB',
                               own < rss_target))
        checks.append((f'{short}: agent CPU {ag["cpu"]:.3f} % <= {cpu_target} % of a core', ag['cpu'] <= cpu_target))
        if rss_target:
            checks.append((f'{short}: agent RSS {ag["rss"]:.1f} MiB < {rss_target:g} MiB', ag['rss'] < rss_target))
        ratio = pe['cpu'] / ag['cpu'] if ag['cpu'] else float('inf')
        checks.append((f'{short}: peer/agent CPU {ratio:.2f} >= {ratio_target:g}', ratio >= ratio_target))
        checks.append((f'{short}: agent serves more GPU series ({ag["own"]}) than the peer ({pe["own"]})', ag['own'] > pe['own']))
        checks.append((f'{short}: agent /metrics p99 {q(ag["lat"], 0.99):.2f} ms < 2 ms with {a.clients} scrapers',
                       q(ag['lat'], 0.99) < 2.0))
        checks.append((f'{short}: agent lost no per-process utilization sample ({ag["lost"]} reads lost some)',
                       ag['lost'] == 0))
        checks.append((f'{short}: agent ready in {agent_ready * 1000:.0f} ms < 150 ms', agent_ready < 0.150))
    print()
    print('targets:')
    for text, ok in checks:
        print(f'{"PASS" if ok else "FAIL"}  {text}')

# --- core: the agent alone ----------------------------------------------------------------

def core(a):
    d = tempfile.mkdtemp(prefix='gpe-bench-')
    layout = node_layout(a.gpus, a.processes, 1)
    sc = os.path.join(d, 'scenario.yaml')
    with open(sc, 'w') as f:
        f.write(scenario(a.gpus, layout, a.costs, health=a.costs != 'none'))
    root = os.path.join(d, 'node')
    os.makedirs(os.path.join(root, 'proc'))
    port = free_port()
    env = dict(os.environ, MOCK_NVML_SCENARIO=sc)
    start = time.time()
    agent = subprocess.Popen([
        os.path.join(a.target, 'gpu-pod-exporter'),
        f'--web.listen-address=127.0.0.1:{port}',
        f'--nvml.library={os.path.join(a.target, "libnvidia_ml_mock.so")}',
        f'--path.rootfs={root}', f'--collect.interval={a.interval_ms}ms', *AGENT_ARGS,
    ], env=env, stderr=subprocess.DEVNULL)
    try:
        startup = wait_until(agent, port, '/readyz', lambda s, b: s == 200, 'the agent', start)
        time.sleep(2)  # warm up: GPM pairs, first allocations

        c0, t0 = cpu_ns(agent.pid), time.time()
        time.sleep(a.seconds)
        c1, t1 = cpu_ns(agent.pid), time.time()
        cycles = (t1 - t0) / (a.interval_ms / 1000)
        per_cycle_ms = (c1 - c0) / 1e6 / cycles
        idle_rss = rss_kib(agent.pid)

        def scrapes(headers):
            conn = http.client.HTTPConnection('127.0.0.1', port, timeout=5)
            lat, size = [], 0
            c2 = cpu_ns(agent.pid)
            for _ in range(a.scrapes):
                s = time.perf_counter()
                conn.request('GET', '/metrics', headers=headers)
                r = conn.getresponse(); body = r.read()
                lat.append((time.perf_counter() - s) * 1000)
                size = len(body)
            c3 = cpu_ns(agent.pid)
            lat.sort()
            # Sampling goes on meanwhile: take its share out.
            cpu = ((c3 - c2) / 1e6 - per_cycle_ms * (sum(lat) / 1000) / (a.interval_ms / 1000)) / a.scrapes
            return lat, size, max(cpu, 0)

        plain = scrapes({'Accept': 'text/plain'})
        gzip = scrapes({'Accept': 'text/plain', 'Accept-Encoding': 'gzip'})
        print(f'node: {a.gpus} GPUs x {a.processes} processes (mock NVML, costs: {a.costs}), interval {a.interval_ms} ms')
        print(f'startup to ready:           {startup * 1000:.0f} ms')
        print(f'CPU per sample cycle:       {per_cycle_ms:.3f} ms  ({cycles:.0f} cycles over {a.seconds:.0f} s)')
        print(f'CPU share at 5 s interval:  {per_cycle_ms / 5000 * 100:.4f} % of one core')
        print(f'RSS:                        {idle_rss / 1024:.1f} MiB (after scrapes: {rss_kib(agent.pid) / 1024:.1f} MiB)')
        for name, (lat, size, cpu) in (('plain', plain), ('gzip', gzip)):
            print(f'/metrics {name:5}:            {size} bytes; p50 {q(lat, 0.5):.3f} ms, p99 {q(lat, 0.99):.3f} ms, max {lat[-1]:.3f} ms ({a.scrapes} scrapes, keep-alive); CPU {cpu:.3f} ms per scrape')
    finally:
        agent.terminate(); agent.wait()
        shutil.rmtree(d, ignore_errors=True)


def main():
    default_target = os.path.join(os.environ.get('CARGO_TARGET_DIR', 'target'), 'release')
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--target', default=default_target, help='folder of the release build')
    sub = ap.add_subparsers(dest='mode')
    c = sub.add_parser('compare', help='agent beside the peer (default)')
    c.add_argument('--seconds', type=float, default=60,
                   help='CPU window per node; keep it a multiple of the interval and of the agent\'s '
                        'health interval (30 s), so that it holds a whole number of both cycles')
    c.add_argument('--warmup', type=float, default=30,
                   help='seconds between both being ready and the CPU window: the agent staggers its '
                        'GPUs\' health reads, each device\'s second read coming up to one health interval '
                        'late, so a window that starts within the first health interval holds too few')
    c.add_argument('--interval-s', type=float, default=5)
    c.add_argument('--costs', default='h200')
    c.add_argument('--clients', type=int, default=20, help='concurrent scrapers')
    c.add_argument('--scrape-period', type=float, default=0.1, help='seconds between one scraper\'s scrapes')
    c.add_argument('--scrape-seconds', type=float, default=6)
    c.add_argument('--burst', type=int, default=500, help='scrapes in the burst test')
    c.add_argument('--peer-python', default=os.path.join('target', 'bench-tools', 'venv', 'bin', 'python'))
    c.add_argument('--dcgm', action='store_true',
                   help='GPUs without GPM, profiled through the mock DCGM (--dcgm.address)')
    k = sub.add_parser('core', help='the agent alone')
    k.add_argument('--gpus', type=int, default=8)
    k.add_argument('--processes', type=int, default=64)
    k.add_argument('--interval-ms', type=int, default=200)
    k.add_argument('--seconds', type=float, default=20)
    k.add_argument('--scrapes', type=int, default=500)
    k.add_argument('--costs', default='none')
    argv = sys.argv[1:]
    if not any(m in argv for m in ('compare', 'core', '-h', '--help')):
        # No mode: compare, after the one global option (`--target DIR` or `--target=DIR`).
        i = 0
        if argv and argv[0] == '--target':
            i = 2
        elif argv and argv[0].startswith('--target='):
            i = 1
        argv = argv[:i] + ['compare'] + argv[i:]
    a = ap.parse_args(argv)
    (core if a.mode == 'core' else compare)(a)


if __name__ == '__main__':
    main()
