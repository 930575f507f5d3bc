#!/usr/bin/env python3
"""Soak: the agent on the mock NVML and a fake node under churn and HTTP abuse, for a bounded
time; fails when its open fds, threads or RSS grow, or its scrape p99 blows up.

    soak.py [--seconds 40] [--target DIR]     (CI: about 50 s in all)
    soak.py --seconds 600                     a longer soak

Every 200 ms a pod goes and a new one comes (its processes, cgroup files and log folders, and
the scenario's process lists), and every `--device-churn` rounds (default: every round) a GPU goes
or comes back (re-enumeration).
Meanwhile, two scrapers scrape /metrics every 100 ms, and an abuser keeps opening idle sockets
and slowloris clients (100 of each, dropped and reopened every second).

The figures are read at the start (after a warm-up) and at the end, each time with the abuse
paused and its sockets closed, so that only what the agent keeps is counted:
fds, threads and RSS must not grow (beyond allocator noise), and the p99 of the last third of
the run's scrapes must stay within 5x (and 100 ms: a loaded CI machine is noisy) of the first
third's.
"""
import argparse, os, random, shutil, socket, subprocess, sys, tempfile, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import device_yaml, free_port, get, q, rss_kib, uid, wait_until  # noqa: E402

CGROUP = ('0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{u}.slice/'
          'cri-containerd-{cid}.scope\n')


class Node:
    """A fake node whose pods and GPUs change: a fake node's tree (docs/design.md) plus the mock's scenario."""

    def __init__(self, root, scenario, gpus, pods):
        self.root, self.scenario, self.gpus, self.present = root, scenario, gpus, gpus
        self.pods, self.next_pod, self.next_pid = [], 0, 100000
        os.makedirs(os.path.join(root, 'proc/1'))  # every procfs has a pid 1
        os.makedirs(os.path.join(root, 'var/log/containers'))
        for _ in range(pods):
            self.add_pod()
        self.write_scenario()

    def add_pod(self):
        p, g = self.next_pod, self.next_pod % self.gpus
        self.next_pod += 1
        pids = [self.next_pid, self.next_pid + 1]
        self.next_pid += 2
        u, pod, cid = uid(p), f'soak-{p}', f'{p:064x}'
        os.makedirs(os.path.join(self.root, f'var/log/pods/llm_{pod}_{u}/server'))
        os.symlink(f'/var/log/pods/llm_{pod}_{u}/server/0.log',
                   os.path.join(self.root, f'var/log/containers/{pod}_llm_server-{cid}.log'))
        for pid in pids:
            d = os.path.join(self.root, f'proc/{pid}')
            os.makedirs(d)
            with open(os.path.join(d, 'cgroup'), 'w') as f:
                f.write(CGROUP.format(u=u.replace('-', '_'), cid=cid))
            with open(os.path.join(d, 'comm'), 'w') as f:
                f.write('python3\n')
        self.pods.append((p, g, pids))

    def remove_pod(self):
        p, _, pids = self.pods.pop(0)
        u, pod, cid = uid(p), f'soak-{p}', f'{p:064x}'
        os.unlink(os.path.join(self.root, f'var/log/containers/{pod}_llm_server-{cid}.log'))
        shutil.rmtree(os.path.join(self.root, f'var/log/pods/llm_{pod}_{u}'))
        for pid in pids:
            shutil.rmtree(os.path.join(self.root, f'proc/{pid}'))

    def write_scenario(self):
        out = ['driver_version: "580.159.04"', 'devices:']
        for g in range(self.present):
            procs = [(pid, 20) for (_, gg, pids) in self.pods if gg == g for pid in pids]
            out += device_yaml(g, procs, costly_health=True)
        tmp = self.scenario + '.tmp'
        with open(tmp, 'w') as f:
            f.write('\n'.join(out) + '\n')
        os.replace(tmp, self.scenario)

    def churn(self, round_, device_every):
        self.remove_pod()
        self.add_pod()
        if round_ % device_every == 0:
            self.present = self.gpus - 1 if self.present == self.gpus else self.gpus
        self.write_scenario()


class Abuser:
    """Idle sockets and slowloris clients, dropped and reopened every second while running."""

    def __init__(self, port, idle, slow):
        self.port, self.idle, self.slow = port, idle, slow
        self.running, self.stop = threading.Event(), threading.Event()
        self.socks = []
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def open(self):
        for i in range(self.idle + self.slow):
            try:
                s = socket.create_connection(('127.0.0.1', self.port), timeout=2)
                if i >= self.idle:
                    s.sendall(b'GET /metrics HTTP/1.1\r\nHost: x\r\n')
                self.socks.append(s)
            except OSError:
                pass

    def close(self):
        for s in self.socks:
            s.close()
        self.socks = []

    def run(self):
        while not self.stop.is_set():
            if not self.running.is_set():
                self.close()
                time.sleep(0.05)
                continue
            self.open()
            until = time.monotonic() + 1
            while time.monotonic() < until and self.running.is_set():
                for s in self.socks[self.idle:]:
                    try:
                        s.sendall(b'X-Slow: 1\r\n')
                    except OSError:
                        pass
                time.sleep(0.2)
            self.close()


class Scrapers:
    """Scrapers of /metrics every `period`, recording (time, latency ms)."""

    def __init__(self, port, clients, period):
        self.port, self.period, self.lat = port, period, []
        self.stop, self.errors, self.lock = threading.Event(), [], threading.Lock()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(clients)]
        for t in self.threads:
            t.start()

    def run(self):
        time.sleep(random.random() * self.period)
        while not self.stop.is_set():
            s = time.perf_counter()
            try:
                status, _ = get(self.port, '/metrics', timeout=10)
                if status != 200:
                    self.errors.append(f'/metrics answered {status}')
            except OSError as e:
                self.errors.append(f'/metrics failed: {e}')
            with self.lock:
                self.lat.append((time.monotonic(), (time.perf_counter() - s) * 1000))
            time.sleep(self.period)


def figures(pid):
    with open(f'/proc/{pid}/status') as f:
        threads = next(int(l.split()[1]) for l in f if l.startswith('Threads:'))
    return {'fds': len(os.listdir(f'/proc/{pid}/fd')), 'threads': threads,
            'rss_mib': rss_kib(pid) / 1024}


def quiet_figures(agent, port, abuser, node, churning, what):
    """The agent's figures with the churn paused on every GPU present (so that as many device
    threads run each time), and the abuse paused with every abusive socket closed."""
    churning.clear()
    time.sleep(0.3)  # a churn round in progress finishes
    node.present = node.gpus
    node.write_scenario()
    time.sleep(1.5)  # re-enumeration settles, old device threads end
    abuser.running.clear()
    deadline = time.monotonic() + 10
    while True:
        _, body = get(port, '/metrics')
        open_ = next((float(l.split()[-1]) for l in body.splitlines()
                      if l.startswith('gpu_pod_exporter_http_connections ')), None)
        # The scrapers' own connections (two, plus this one) may be open.
        if open_ is not None and open_ <= 3:
            break
        if time.monotonic() > deadline:
            sys.exit(f'soak: {open_} connections still open 10 s after the abuse paused ({what})')
        time.sleep(0.1)
    f = figures(agent.pid)
    abuser.running.set()
    churning.set()
    return f


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    target = os.environ.get('CARGO_TARGET_DIR', 'target')
    ap.add_argument('--target', default=os.path.join(target, 'debug'),
                    help='folder of the built agent and mock (default: $CARGO_TARGET_DIR/debug)')
    ap.add_argument('--seconds', type=float, default=40, help='churn time between the two readings')
    ap.add_argument('--warmup', type=float, default=5)
    ap.add_argument('--gpus', type=int, default=4)
    ap.add_argument('--pods', type=int, default=16)
    ap.add_argument('--churn-ms', type=int, default=200)
    ap.add_argument('--device-churn', type=int, default=1,
                    help='a GPU goes or comes back every this many churn rounds')
    ap.add_argument('--interval', default='200ms', help='the agent\'s --collect.interval')
    a = ap.parse_args()

    d = tempfile.mkdtemp(prefix='gpe-soak-')
    scenario = os.path.join(d, 'scenario.yaml')
    node = Node(os.path.join(d, 'node'), scenario, a.gpus, a.pods)
    port = free_port()
    env = dict(os.environ, MOCK_NVML_SCENARIO=scenario)
    agent = subprocess.Popen([
        os.path.join(a.target, 'gpu-pod-exporter'),
        f'--web.listen-address=127.0.0.1:{port}',
        f'--nvml.library={os.path.join(a.target, "libnvidia_ml_mock.so")}',
        f'--path.rootfs={node.root}', f'--collect.interval={a.interval}',
        '--no-collector.amd', '--log.level=error',
    ], env=env, stderr=subprocess.DEVNULL)
    stop = threading.Event()
    try:
        wait_until(agent, port, '/readyz', lambda s, b: s == 200, 'the agent', time.time())

        churning = threading.Event()
        churning.set()

        def churn():
            r = 0
            while not stop.is_set():
                if churning.is_set():
                    r += 1
                    node.churn(r, a.device_churn)
                time.sleep(a.churn_ms / 1000)
        churner = threading.Thread(target=churn, daemon=True)
        churner.start()
        abuser = Abuser(port, idle=100, slow=100)
        abuser.running.set()
        scrapers = Scrapers(port, clients=2, period=0.1)

        time.sleep(a.warmup)
        t0 = time.monotonic()
        start = quiet_figures(agent, port, abuser, node, churning, 'start')
        time.sleep(a.seconds)
        end = quiet_figures(agent, port, abuser, node, churning, 'end')
        t1 = time.monotonic()
        stop.set(); scrapers.stop.set(); abuser.stop.set()
        churner.join()
        for t in scrapers.threads:
            t.join()
        if agent.poll() is not None:
            sys.exit(f'soak: the agent exited with {agent.returncode}')

        third = (t1 - t0) / 3
        first = sorted(l for t, l in scrapers.lat if t0 <= t < t0 + third)
        last = sorted(l for t, l in scrapers.lat if t1 - third <= t <= t1)
        start['p99_ms'], end['p99_ms'] = q(first, 0.99), q(last, 0.99)
        print(f'soak: {a.seconds:.0f} s of pod churn every {a.churn_ms} ms, a GPU gone or back every '
              f'{a.churn_ms * a.device_churn} ms, {len(scrapers.lat)} scrapes, 200 abusive clients a second')
        print(f'{"":8}{"fds":>6}{"threads":>9}{"RSS MiB":>9}{"p99 ms":>9}')
        for name, f in (('start', start), ('end', end)):
            print(f'{name:8}{f["fds"]:>6}{f["threads"]:>9}{f["rss_mib"]:>9.1f}{f["p99_ms"]:>9.2f}')

        failures = list(dict.fromkeys(scrapers.errors))[:5]
        if end['fds'] > start['fds'] + 8:
            failures.append(f'fds grew from {start["fds"]} to {end["fds"]}')
        if end['threads'] > start['threads'] + 2:
            failures.append(f'threads grew from {start["threads"]} to {end["threads"]}')
        if end['rss_mib'] > max(start['rss_mib'] * 1.25, start['rss_mib'] + 8):
            failures.append(f'RSS grew from {start["rss_mib"]:.1f} to {end["rss_mib"]:.1f} MiB')
        if end['p99_ms'] > max(start['p99_ms'] * 5, start['p99_ms'] + 100):
            failures.append(f'p99 grew from {start["p99_ms"]:.2f} to {end["p99_ms"]:.2f} ms')
        for f in failures:
            print(f'FAIL: {f}')
        if failures:
            sys.exit(1)
        print('ok: flat')
    finally:
        stop.set()
        agent.terminate(); agent.wait()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == '__main__':
    main()
