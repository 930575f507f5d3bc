#!/usr/bin/env python3
"""Benchmark of the real agent on the mock NVML: CPU time per sample cycle, RSS, and /metrics
latency, for N GPUs x M processes. Prints figures; asserts nothing about them.

CPU time is read from /proc/<pid>/task/*/schedstat (nanoseconds on CPU, every thread), so it
includes everything the agent does per cycle: the coordinator, the device workers, the mock's
own work inside the agent process (it stats the scenario file on every call, which real NVML does
not), and the snapshot rebuild.
"""
import argparse, http.client, os, socket, statistics, subprocess, sys, tempfile, time

def scenario(gpus, procs):
    out = ['driver_version: "550.54.15"', 'devices:']
    for g in range(gpus):
        out += [
            f'  - uuid: GPU-00000000-0000-4000-8000-{g:012x}',
            '    name: NVIDIA H100 80GB HBM3',
            f'    pci_bus_id: "00000000:{0x18 + g:02X}:00.0"',
            '    memory_total_bytes: 85520809984',
            '    memory_used_bytes: 40265318400',
            '    utilization_gpu_percent: 87',
            '    utilization_memory_percent: 45',
            '    power_milliwatts: 350000',
            '    temperature_celsius: 61',
            '    sm_clock_mhz: 1980',
            '    process_utilization: supported',
            '    gpm: {sm_active: 0.6, sm_occupancy: 0.4, tensor_active: 0.3, dram_active: 0.5}',
            '    processes:',
        ]
        for p in range(procs):
            out.append(f'      - {{pid: {100000 + g * 1000 + p}, used_memory_bytes: 500000000, sm_util_percent: 1, mem_util_percent: 1}}')
    return '\n'.join(out) + '\n'

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

def free_port():
    s = socket.socket(); s.bind(('127.0.0.1', 0)); p = s.getsockname()[1]; s.close(); return p

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--gpus', type=int, default=8)
    ap.add_argument('--processes', type=int, default=64)
    ap.add_argument('--interval-ms', type=int, default=200)
    ap.add_argument('--seconds', type=float, default=20)
    ap.add_argument('--scrapes', type=int, default=500)
    ap.add_argument('--target', default='target/release')
    a = ap.parse_args()

    d = tempfile.mkdtemp(prefix='gpe-bench-')
    sc = os.path.join(d, 'scenario.yaml')
    with open(sc, 'w') as f:
        f.write(scenario(a.gpus, a.processes))
    os.makedirs(os.path.join(d, 'node', 'proc'))
    port = free_port()
    env = dict(os.environ, MOCK_NVML_SCENARIO=sc)
    agent = subprocess.Popen([
        os.path.join(a.target, 'gpu-pod-exporter'),
        f'--web.listen-address=127.0.0.1:{port}',
        f'--nvml.library={os.path.join(a.target, "libnvidia_ml_mock.so")}',
        f'--path.rootfs={os.path.join(d, "node")}',
        f'--collect.interval={a.interval_ms}ms', '--log.level=warn',
    ], env=env, stderr=subprocess.DEVNULL)
    try:
        start = time.time()
        while True:
            try:
                c = http.client.HTTPConnection('127.0.0.1', port, timeout=5)
                c.request('GET', '/readyz'); r = c.getresponse(); r.read()
                if r.status == 200:
                    break
            except OSError:
                pass
            if time.time() - start > 20:
                sys.exit('agent did not become ready')
            time.sleep(0.02)
        startup = time.time() - start
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
        print(f'node: {a.gpus} GPUs x {a.processes} processes (mock NVML), interval {a.interval_ms} ms')
        print(f'startup to ready:           {startup * 1000:.0f} ms')
        print(f'CPU per sample cycle:       {per_cycle_ms:.3f} ms  ({cycles:.0f} cycles over {a.seconds:.0f} s)')
        print(f'CPU share at 5 s interval:  {per_cycle_ms / 5000 * 100:.4f} % of one core')
        print(f'RSS:                        {idle_rss / 1024:.1f} MiB (after scrapes: {rss_kib(agent.pid) / 1024:.1f} MiB)')
        for name, (lat, size, cpu) in (('plain', plain), ('gzip', gzip)):
            q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
            print(f'/metrics {name:5}:            {size} bytes; p50 {q(0.5):.3f} ms, p99 {q(0.99):.3f} ms, max {lat[-1]:.3f} ms ({a.scrapes} scrapes, keep-alive); CPU {cpu:.3f} ms per scrape')
    finally:
        agent.terminate(); agent.wait()

if __name__ == '__main__':
    main()
