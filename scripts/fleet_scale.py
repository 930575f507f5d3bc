#!/usr/bin/env python3
"""The fleet-scale benchmark: a real Prometheus scrapes N simulated GPU nodes every 15 s, with
the shipped recording rules and alerts loaded, and this prints what that costs. Prints figures;
asserts nothing. `scripts/fleet-scale.sh` records the node templates and runs this.

    fleet_scale.py --templates DIR [--nodes 100,500,1000] [--kinds exclusive,shared,mig,amd]
                   [--rules FILE ...] [--compare-rules FILE] [--warmup 240] [--measure 120]
                   [--deployment-pods 50]

Each simulated node serves one recorded agent `/metrics` (DIR/<kind>.prom, written by
tests/series_budget.rs from the agent itself), rewritten with its own pods and GPU UUIDs; kinds
take turns node by node. A simulated kube-state-metrics target serves the pods' owners, labels,
readiness and the nodes' GPU capacity, as the workload, pod-label and agent-coverage rules
need (for every GPU pod, each node's agent and 12 other DaemonSet pods per node). One loopback HTTP server (this script, python3's standard library) serves every target,
each on its own path, with its own `instance` and `node` labels.

For each N and rules file it prints: head series, samples ingested per second, Prometheus's RSS
and CPU, each rule group's `prometheus_rule_group_last_duration_seconds` (median and max over
the measuring window), the costliest rules (`/api/v1/rules` evaluationTime), and the latency of
the Prometheus Adapter's HPA query and series discovery and of KEDA's query (both read from
daemonset/autoscaling/) for a Deployment of --deployment-pods pods. Then a table of every run.
"""
import argparse, hashlib, http.client, http.server, json, os, re, shutil, signal, socket, socketserver
import statistics, subprocess, sys, tempfile, threading, time, urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
DEPLOY_NS, DEPLOY = 'llm', 'vllm'
DEPLOY_RS = f'{DEPLOY}-7d9c5b8f6'
ALPHABET = 'bcdfghjklmnpqrstvwxz2456789'  # Kubernetes' pod-name suffix alphabet
OTHER_DAEMONSETS = 12
JITTERED = ('_ratio', '_watts', '_celsius', '_bytes', '_hertz', '_per_second')


# --- templates and their rewriting ----------------------------------------------------------

def parse_template(path):
    """[(None, comment line) | (name, [(label, value)], value text)]"""
    out = []
    with open(path) as f:
        for line in f:
            line = line.rstrip('\n')
            if not line or line.startswith('#'):
                out.append((None, line))
                continue
            brace = line.find('{')
            if brace < 0:
                name, value = line.split(' ', 1)
                out.append((name, [], value))
                continue
            end = line.rindex('}')
            out.append((line[:brace], LABEL.findall(line[brace + 1:end]), line[end + 1:].strip()))
    return out


def template_pods(lines):
    """The (namespace, pod) pairs of a template, in order of first appearance."""
    seen = {}
    for entry in lines:
        if entry[0] is None:
            continue
        labels = dict(entry[1])
        if 'pod' in labels and entry[0].startswith('pod_'):
            seen.setdefault((labels.get('namespace', ''), labels['pod']), None)
    return list(seen)


def suffix(n, length=5):
    s = ''
    for _ in range(length):
        s += ALPHABET[n % len(ALPHABET)]
        n //= len(ALPHABET)
    return s


def new_uuid(node, value):
    """The same shape (prefix, dashes, hex digits), other hex digits: unique per node."""
    h = hashlib.sha1(f'{node}/{value}'.encode()).hexdigest() * 2
    head, _, rest = value.partition('-') if value[:4] in ('GPU-', 'MIG-') else ('', '', value)
    out, k = [], 0
    for c in rest:
        if c in '0123456789abcdefABCDEF':
            out.append(h[k]); k += 1
        else:
            out.append(c)
    return (head + '-' if head else '') + ''.join(out)


class Fleet:
    """Every simulated node: its kind, its pods (renamed), and the Deployment's pods."""

    def __init__(self, templates, kinds, n, deployment_pods):
        self.templates = templates
        self.nodes = []  # (index, kind, {(ns, pod): (ns, pod, deployment, team)})
        counters = {k: 0 for k in kinds}
        deployed = 0
        for i in range(n):
            kind = kinds[i % len(kinds)]
            mapping = {}
            for ns, pod in template_pods(templates[kind]):
                if kind == 'exclusive' and deployed < deployment_pods:
                    mapping[(ns, pod)] = (DEPLOY_NS, f'{DEPLOY_RS}-{suffix(deployed)}', DEPLOY, 'inference')
                    deployed += 1
                    continue
                j = counters[kind]
                counters[kind] += 1
                # Deployments of 16 pods each, in 25 team namespaces.
                dep = f'{kind}-{j // 16}'
                team = f'team-{(j // 16) % 25}'
                rs = f'{dep}-{hashlib.sha1(dep.encode()).hexdigest()[:9]}'
                mapping[(ns, pod)] = (team, f'{rs}-{suffix(j)}', dep, team)
            self.nodes.append((i, kind, mapping))
        self.deployment = [p for _, _, m in self.nodes for (ns, p, d, _) in m.values() if d == DEPLOY]

    def body(self, node, variant):
        i, kind, mapping = self.nodes[node]
        out = []
        uuids = {}
        for entry in self.templates[kind]:
            if entry[0] is None:
                out.append(entry[1])
                continue
            name, labels, value = entry
            labels = dict(labels)
            if 'pod' in labels and name.startswith('pod_'):
                ns, pod, _, _ = mapping[(labels.get('namespace', ''), labels['pod'])]
                labels['namespace'], labels['pod'] = ns, pod
            for k in ('uuid', 'parent_uuid'):
                if k in labels:
                    v = labels[k]
                    labels[k] = uuids.setdefault(v, new_uuid(i, v))
            # Gauges move a little from scrape to scrape (counters and states do not), so that
            # the head's chunks hold values that change, as a live node's do.
            if variant and name.endswith(JITTERED) and not name.endswith('_total'):
                try:
                    value = repr(float(value) * (1 + 0.002 * variant))
                except ValueError:
                    pass
            text = ','.join(f'{k}="{v}"' for k, v in labels.items())
            out.append(f'{name}{{{text}}} {value}' if labels else f'{name} {value}')
        return ('\n'.join(out) + '\n').encode()

    def ksm_body(self):
        """kube-state-metrics as a cluster of these nodes has it (the series the rules read)."""
        out = []
        add = out.append
        replicasets = {}
        for i, kind, mapping in self.nodes:
            node = f'gpu-node-{i}'
            add(f'kube_node_info{{node="{node}",kernel_version="6.8.0",os_image="Ubuntu 24.04"}} 1')
            resource = 'amd_com_gpu' if kind == 'amd' else (
                'nvidia_com_mig_1g_10gb' if kind == 'mig' else 'nvidia_com_gpu')
            count = 56 if kind == 'mig' else (32 if kind == 'shared' else 8)
            add(f'kube_node_status_capacity{{node="{node}",resource="{resource}",unit="integer"}} {count}')
            add(f'kube_node_status_capacity{{node="{node}",resource="cpu",unit="core"}} 192')
            agent = f'gpu-pod-exporter-{"amd" if kind == "amd" else "nvidia"}-{suffix(i)}'
            pods = [('gpu-pod-exporter', agent, 'DaemonSet',
                     f'gpu-pod-exporter-{"amd" if kind == "amd" else "nvidia"}', 'gpu-pod-exporter', 'monitoring')]
            # The other DaemonSets a GPU node runs (CNI, kube-proxy, node-exporter, the device
            # plugin, GPU feature discovery, ...): pods kube-state-metrics reports too.
            for d in range(OTHER_DAEMONSETS):
                pods.append(('kube-system', f'node-daemon-{d}-{suffix(i)}', 'DaemonSet', f'node-daemon-{d}',
                             f'node-daemon-{d}', 'platform'))
            for ns, pod, dep, team in mapping.values():
                rs = pod.rsplit('-', 1)[0]
                replicasets[(ns, rs)] = dep
                pods.append((ns, pod, 'ReplicaSet', rs, dep, team))
            for ns, pod, owner_kind, owner, app, team in pods:
                add(f'kube_pod_info{{namespace="{ns}",pod="{pod}",node="{node}",created_by_kind="{owner_kind}",'
                    f'created_by_name="{owner}",host_network="false",priority_class=""}} 1')
                add(f'kube_pod_owner{{namespace="{ns}",pod="{pod}",owner_kind="{owner_kind}",owner_name="{owner}",'
                    f'owner_is_controller="true"}} 1')
                add(f'kube_pod_labels{{namespace="{ns}",pod="{pod}",label_app="{app}",label_team="{team}"}} 1')
                for cond, v in (('true', 1), ('false', 0), ('unknown', 0)):
                    add(f'kube_pod_status_ready{{namespace="{ns}",pod="{pod}",condition="{cond}"}} {v}')
        for (ns, rs), dep in replicasets.items():
            add(f'kube_replicaset_owner{{namespace="{ns}",replicaset="{rs}",owner_kind="Deployment",'
                f'owner_name="{dep}",owner_is_controller="true"}} 1')
        add(f'kube_horizontalpodautoscaler_status_condition{{namespace="{DEPLOY_NS}",horizontalpodautoscaler="{DEPLOY}",'
            f'condition="ScalingActive",status="true"}} 1')
        add(f'kube_horizontalpodautoscaler_status_condition{{namespace="{DEPLOY_NS}",horizontalpodautoscaler="{DEPLOY}",'
            f'condition="ScalingActive",status="false"}} 0')
        add(f'kube_horizontalpodautoscaler_status_current_replicas{{namespace="{DEPLOY_NS}",'
            f'horizontalpodautoscaler="{DEPLOY}"}} {len(self.deployment)}')
        return ('\n'.join(out) + '\n').encode()


# --- the targets' server --------------------------------------------------------------------

VARIANTS = 3


class Targets(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    request_queue_size = 1024

    def handle_error(self, request, client_address):
        # Prometheus closing its scrape connections (at shutdown, or a scrape timeout) is normal.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def serve(bodies, port):
    """Serves bodies[path][k], k taking turns per request, until the process ends."""
    turn = {p: 0 for p in bodies}
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = 'HTTP/1.1'

        def do_GET(self):
            variants = bodies.get(self.path)
            if variants is None:
                self.send_error(404)
                return
            with lock:
                k = turn[self.path]
                turn[self.path] = (k + 1) % len(variants)
            body = variants[k]
            self.send_response(200)
            self.send_header('Content-Type', 'text/plain; version=0.0.4; charset=utf-8')
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_):
            pass

    server = Targets(('127.0.0.1', port), Handler)
    server.serve_forever()


# --- Prometheus -----------------------------------------------------------------------------

def free_port():
    s = socket.socket(); s.bind(('127.0.0.1', 0)); p = s.getsockname()[1]; s.close(); return p


def prometheus_config(fleet, targets_port, rules, interval):
    lines = [
        'global:',
        f'  scrape_interval: {interval}s',
        f'  evaluation_interval: {interval}s',
        f'rule_files: [{json.dumps(os.path.abspath(rules))}]',
        'scrape_configs:',
        '  - job_name: gpu-pod-exporter',
        '    honor_labels: true',
        '    scrape_timeout: 10s',
        '    static_configs:',
    ]
    for i, _, _ in fleet.nodes:
        lines.append(f'      - targets: ["127.0.0.1:{targets_port}"]')
        lines.append(f'        labels: {{__metrics_path__: "/node/{i}", instance: "10.{i // 250}.{i % 250}.10:9400",'
                     f' node: "gpu-node-{i}"}}')
    lines += [
        '  - job_name: kube-state-metrics',
        '    honor_labels: true',
        '    scrape_timeout: 10s',
        '    metrics_path: /ksm',
        f'    static_configs: [{{targets: ["127.0.0.1:{targets_port}"]}}]',
    ]
    return '\n'.join(lines) + '\n'


def get_json(port, path, timeout=30):
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=timeout)
    try:
        c.request('GET', path)
        r = c.getresponse()
        body = r.read()
        if r.status != 200:
            raise RuntimeError(f'GET {path}: {r.status} {body[:300]!r}')
        return json.loads(body)
    finally:
        c.close()


def scrape_text(port, path='/metrics'):
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=30)
    try:
        c.request('GET', path)
        return c.getresponse().read().decode()
    finally:
        c.close()


def own_metrics(port):
    """Prometheus's own series: {name: [(labels dict, value)]}."""
    out = {}
    for line in scrape_text(port).splitlines():
        if not line or line.startswith('#'):
            continue
        brace = line.find('{')
        if brace < 0:
            name, _, value = line.partition(' ')
            labels = {}
        else:
            end = line.rindex('}')
            name, labels, value = line[:brace], dict(LABEL.findall(line[brace + 1:end])), line[end + 1:].strip()
        try:
            out.setdefault(name, []).append((labels, float(value.split()[0])))
        except ValueError:
            pass
    return out


def total(m, name):
    return sum(v for _, v in m.get(name, []))


def proc_cpu_seconds(pid):
    with open(f'/proc/{pid}/stat') as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def proc_rss_mib(pid):
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
    return 0.0


def loadavg():
    with open('/proc/loadavg') as f:
        return ' '.join(f.read().split()[:3])


# --- the adapter's and KEDA's queries -------------------------------------------------------

def adapter_queries():
    """(metric name, seriesQuery, metricsQuery) of each rule in the shipped adapter values."""
    text = open(os.path.join(REPO, 'daemonset/autoscaling/prometheus-adapter-values.yaml')).read()
    out = []
    for block in re.split(r'\n\s*- seriesQuery:', text)[1:]:
        series = block.split('\n', 1)[0].strip().strip("'")
        name = re.search(r'\bas:\s*"([^"]+)"', block).group(1)
        query = re.search(r"metricsQuery:\s*'([^']+)'", block).group(1)
        out.append((name, series, query))
    return out


def keda_queries():
    text = open(os.path.join(REPO, 'daemonset/autoscaling/keda-scaledobject.yaml')).read()
    return re.findall(r'^\s*query:\s*(.+)$', text, re.M)


def timed_query(port, query, repeat):
    """Median and max wall milliseconds of `repeat` instant queries, and the last result size."""
    path = '/api/v1/query?' + urllib.parse.urlencode({'query': query})
    times, n = [], 0
    for _ in range(repeat):
        t = time.perf_counter()
        r = get_json(port, path)
        times.append((time.perf_counter() - t) * 1000)
        n = len(r['data']['result'])
        time.sleep(0.2)
    return statistics.median(times), max(times), n


def rule_time_ms(port, query, repeat):
    """The least server-side evaluation time of `repeat` runs of one rule's expression, ms: the
    rule's own cost with nothing else evaluating beside it (the least of a few runs leaves out
    the other work of a busy machine)."""
    path = '/api/v1/query?' + urllib.parse.urlencode({'query': query, 'stats': 'all'})
    best = None
    for _ in range(repeat):
        t = time.perf_counter()
        r = get_json(port, path)
        wall = (time.perf_counter() - t) * 1000
        ms = r['data'].get('stats', {}).get('timings', {}).get('evalTotalTime')
        ms = wall if ms is None else ms * 1000
        best = ms if best is None else min(best, ms)
    return best


def compare_rules(path, default_interval):
    """(group, rule name, expression, interval s) of every rule in a rule file."""
    try:
        import yaml
    except ImportError:
        sys.exit('--compare-rules needs PyYAML (Debian: python3-yaml)')
    out = []
    for g in yaml.safe_load(open(path))['groups']:
        iv = parse_duration(g.get('interval')) or default_interval
        for r in g['rules']:
            out.append((g['name'], r.get('record') or r.get('alert'), r['expr'], iv))
    return out


def parse_duration(text):
    if not text:
        return None
    units = {'ms': 0.001, 's': 1, 'm': 60, 'h': 3600, 'd': 86400}
    total = 0.0
    for number, unit in re.findall(r'(\d+)(ms|s|m|h|d)', str(text)):
        total += int(number) * units[unit]
    return total


def timed_series(port, match, window_s, repeat):
    """The adapter's discovery: /api/v1/series over its relist window (10 min by default)."""
    now = time.time()
    path = '/api/v1/series?' + urllib.parse.urlencode(
        {'match[]': match, 'start': f'{now - window_s:.3f}', 'end': f'{now:.3f}'})
    times, n = [], 0
    for _ in range(repeat):
        t = time.perf_counter()
        r = get_json(port, path)
        times.append((time.perf_counter() - t) * 1000)
        n = len(r['data'])
        time.sleep(0.2)
    return statistics.median(times), max(times), n


# --- one run --------------------------------------------------------------------------------

def run(a, templates, n, rules):
    fleet = Fleet(templates, a.kinds, n, a.deployment_pods)
    t0 = time.time()
    bodies = {f'/node/{i}': [fleet.body(i, v) for v in range(VARIANTS)] for i in range(n)}
    bodies['/ksm'] = [fleet.ksm_body()]
    build_s = time.time() - t0
    work = tempfile.mkdtemp(prefix='fleet-scale-')
    port, prom_port = free_port(), free_port()
    server_pid = os.fork()
    if server_pid == 0:
        try:
            signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
            serve(bodies, port)
        finally:
            os._exit(0)
    prom = None
    try:
        config = os.path.join(work, 'prometheus.yml')
        with open(config, 'w') as f:
            f.write(prometheus_config(fleet, port, rules, a.interval))
        log = open(os.path.join(work, 'prometheus.log'), 'w+')
        prom = subprocess.Popen([
            a.prometheus, f'--config.file={config}', f'--storage.tsdb.path={work}/data',
            f'--web.listen-address=127.0.0.1:{prom_port}', '--storage.tsdb.retention.time=1d',
            '--log.level=warn',
        ], stdout=log, stderr=log)
        deadline = time.time() + 60
        while True:
            try:
                if scrape_text(prom_port, '/-/ready').strip().startswith('Prometheus Server is Ready'):
                    break
            except OSError:
                pass
            if prom.poll() is not None or time.time() > deadline:
                log.seek(0)
                sys.exit(f'prometheus did not start:\n{log.read()[-3000:]}')
            time.sleep(0.2)
        series_per_node = {k: sum(1 for e in templates[k] if e[0] is not None) for k in a.kinds}
        print(f'\n== {n} nodes ({", ".join(f"{k} {series_per_node[k]} series" for k in a.kinds)}), '
              f'rules {os.path.relpath(rules, REPO) if rules.startswith(REPO) else rules}', flush=True)
        print(f'   load before: {loadavg()}; bodies built in {build_s:.1f} s; warming up {a.warmup} s', flush=True)
        time.sleep(a.warmup)
        # The measuring window: every group's last duration sampled once per interval.
        m0, c0, s0, w0 = own_metrics(prom_port), proc_cpu_seconds(prom.pid), proc_cpu_seconds(server_pid), time.time()
        # Each evaluation counted once: keyed by its group's last evaluation time.
        groups, rules_time, intervals = {}, {}, {}
        rounds = max(1, int(a.measure // a.interval))
        for _ in range(rounds):
            time.sleep(a.interval)
            for g in get_json(prom_port, '/api/v1/rules')['data']['groups']:
                intervals[g['name']] = g['interval']
                if g.get('lastEvaluation', '').startswith('0001'):
                    continue  # not evaluated yet
                groups.setdefault(g['name'], {})[g['lastEvaluation']] = g['evaluationTime'] * 1000
                for r in g['rules']:
                    key = (g['name'], r.get('name', ''), r['query'][:70].replace('\n', ' '))
                    rules_time.setdefault(key, {})[g['lastEvaluation']] = r.get('evaluationTime', 0) * 1000
        m1, c1, s1, w1 = own_metrics(prom_port), proc_cpu_seconds(prom.pid), proc_cpu_seconds(server_pid), time.time()
        window = w1 - w0
        head = total(m1, 'prometheus_tsdb_head_series')
        ingest = (total(m1, 'prometheus_tsdb_head_samples_appended_total')
                  - total(m0, 'prometheus_tsdb_head_samples_appended_total')) / window
        missed = {l['rule_group'].split(';', 1)[1]: v for l, v in m1.get('prometheus_rule_group_iterations_missed_total', [])}
        failures = total(m1, 'prometheus_rule_evaluation_failures_total')
        scrape_ms = [v * 1000 for l, v in m1.get('scrape_duration_seconds', [])]
        rss = proc_rss_mib(prom.pid)
        cpu = (c1 - c0) / window * 100
        server_cpu = (s1 - s0) / window * 100
        up = get_json(prom_port, '/api/v1/query?query=' + urllib.parse.quote('count(up == 1)'))['data']['result']
        up_n = int(float(up[0]['value'][1])) if up else 0
        if up_n < n + 1:
            errors = {t['lastError'] for t in get_json(prom_port, '/api/v1/targets')['data']['activeTargets']
                      if t['health'] != 'up'}
            print(f'   WARNING: {n + 1 - up_n} targets down: {sorted(errors)[:3]}')
        print(f'   targets up {up_n}/{n + 1}; head series {head:,.0f}; ingestion {ingest:,.0f} samples/s; '
              f'Prometheus RSS {rss:,.0f} MiB, CPU {cpu:.0f} % of a core (targets\' server {server_cpu:.0f} %)')
        print(f'   rule groups over {window:.0f} s (evaluation ms: median / max of n; iterations missed; '
              f'rule evaluation failures {failures:.0f}); cost = ms of evaluation per second:')
        group_rows, cost = {}, 0.0
        for g, evals in sorted(groups.items()):
            vals = list(evals.values())
            group_rows[g] = statistics.median(vals)
            cost += group_rows[g] / intervals[g]
            print(f'     {g:<42} {statistics.median(vals):8.1f} / {max(vals):8.1f} of {len(vals):2}   '
                  f'every {intervals[g]:3.0f} s: {group_rows[g] / intervals[g]:6.2f} ms/s   missed {missed.get(g, 0):.0f}')
        print(f'     {"all groups":<42} {sum(group_rows.values()):8.1f} per round of each; '
              f'{cost:.2f} ms/s, {cost / head * 1e3 * 1e3:.1f} µs/s per 1,000 head series')
        top = sorted(((statistics.median(v.values()), k) for k, v in rules_time.items()), reverse=True)[:a.top]
        print(f'   costliest rules (median ms per evaluation, /api/v1/rules evaluationTime):')
        for ms, (g, name, q) in top:
            print(f'     {ms:8.2f}  {g.split(".", 1)[-1]:<14} every {intervals[g]:3.0f} s  {name[:48]:<48} {q[:50]}')
        # Every rule on its own: its expression as an instant query, one at a time. With
        # --compare-rules, that file's rules too, each run taking turns with the loaded ones, so
        # that both sets are timed under the same load on the same data.
        loaded = [(g['name'], r.get('name', ''), r['query'], g['interval'])
                  for g in get_json(prom_port, '/api/v1/rules')['data']['groups'] for r in g['rules']]
        other = compare_rules(a.compare_rules, a.interval) if a.compare_rules else []
        best = {}
        for _ in range(a.rule_repeat):
            for i in range(max(len(loaded), len(other))):
                for which, rules_list in (('loaded', loaded), ('other', other)):
                    if i < len(rules_list):
                        ms = rule_time_ms(prom_port, rules_list[i][2], 1)
                        key = (which, i)
                        best[key] = ms if key not in best else min(best[key], ms)
        one_by_one, group_cost = [], {}
        for i, (g, name, _, iv) in enumerate(loaded):
            ms = best[('loaded', i)]
            one_by_one.append((ms, g, name, iv))
            group_cost[g] = group_cost.get(g, 0.0) + ms
        alone = sum(ms / iv for ms, _, _, iv in one_by_one)
        other_alone = sum(best[('other', i)] / iv for i, (_, _, _, iv) in enumerate(other))
        print(f'   every rule timed on its own (least of {a.rule_repeat} runs, server-side): '
              f'{sum(ms for ms, *_ in one_by_one):.1f} ms for one round of every rule; '
              f'{alone:.2f} ms/s at the groups\' intervals, {alone / head * 1e6:.1f} µs/s per 1,000 head series')
        for g in sorted(group_cost):
            print(f'     {g:<42} {group_cost[g]:8.1f} ms every {intervals[g]:3.0f} s: '
                  f'{group_cost[g] / intervals[g]:6.2f} ms/s')
        if other:
            print(f'   {os.path.basename(a.compare_rules)} timed the same way, taking turns with these: '
                  f'{sum(best[("other", i)] for i in range(len(other))):.1f} ms for one round; '
                  f'{other_alone:.2f} ms/s at its groups\' intervals (ratio {other_alone / alone:.2f})')
            by_group = {}
            for i, (g, _, _, iv) in enumerate(other):
                by_group.setdefault((g, iv), 0.0)
                by_group[(g, iv)] += best[('other', i)]
            for (g, iv), ms in sorted(by_group.items()):
                print(f'     {g:<42} {ms:8.1f} ms every {iv:3.0f} s: {ms / iv:6.2f} ms/s')
        print('   costliest rules on their own (ms per evaluation):')
        for ms, g, name, iv in sorted(one_by_one, reverse=True)[:a.top]:
            print(f'     {ms:8.2f}  {g.split(".", 1)[-1]:<14} every {iv:3.0f} s  {name}')
        # The HPA's and KEDA's queries for the Deployment.
        pods = fleet.deployment
        matchers = f'namespace="{DEPLOY_NS}",pod=~"{"|".join(pods)}"'
        queries = {}
        print(f'   queries for Deployment {DEPLOY_NS}/{DEPLOY} of {len(pods)} pods '
              f'(ms: median / max of {a.repeat}; series returned):')
        for name, series, metrics in adapter_queries():
            if name.startswith('vllm'):
                continue  # vLLM's own series are not simulated here
            q = metrics.replace('<<.GroupBy>>', 'pod').replace('<<.LabelMatchers>>', matchers)
            med, mx, k = timed_query(prom_port, q, a.repeat)
            queries[f'adapter {name}'] = med
            print(f'     adapter {name:<34} {med:7.1f} / {mx:7.1f}   {k}')
            med, mx, k = timed_series(prom_port, series, 600, a.repeat)
            queries[f'adapter discovery {name}'] = med
            print(f'     adapter discovery {name:<24} {med:7.1f} / {mx:7.1f}   {k}  (/api/v1/series, 10 min)')
        for q in keda_queries():
            if 'vllm:' in q:
                continue  # vLLM's own series are not simulated here
            med, mx, k = timed_query(prom_port, q, a.repeat)
            name = re.search(r'\(([a-z_:]+)\{', q)
            queries[f'keda {name.group(1) if name else q[:30]}'] = med
            print(f'     KEDA {q[:40]:<37} {med:7.1f} / {mx:7.1f}   {k}')
        print(f'   load after: {loadavg()}', flush=True)
        return dict(nodes=n, rules=rules, head=head, ingest=ingest, rss=rss, cpu=cpu, groups=group_rows, cost=cost,
                    alone=alone, round_ms=sum(ms for ms, *_ in one_by_one), other_alone=other_alone,
                    queries=queries, load=loadavg(), missed=sum(missed.values()), up=up_n,
                    scrape_ms=statistics.median(scrape_ms) if scrape_ms else 0)
    finally:
        if prom is not None:
            prom.terminate()
            try:
                prom.wait(timeout=30)
            except subprocess.TimeoutExpired:
                prom.kill()
        os.kill(server_pid, signal.SIGTERM)
        os.waitpid(server_pid, 0)
        shutil.rmtree(work, ignore_errors=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--templates', required=True, help='folder of <kind>.prom (tests/series_budget.rs)')
    p.add_argument('--nodes', default='100,500,1000', help='comma-separated node counts')
    p.add_argument('--kinds', default='exclusive,shared,mig,amd', help='node kinds, taking turns')
    p.add_argument('--rules', action='append', help='rule files (default: the shipped one); each is run at every N')
    p.add_argument('--warmup', type=float, default=240, help='seconds before measuring')
    p.add_argument('--measure', type=float, default=120, help='seconds of measuring')
    p.add_argument('--interval', type=int, default=15, help='scrape and evaluation interval, s')
    p.add_argument('--deployment-pods', type=int, default=50)
    p.add_argument('--repeat', type=int, default=20, help='times each query is run')
    p.add_argument('--top', type=int, default=8, help='rules listed by cost')
    p.add_argument('--rule-repeat', type=int, default=5, help='runs of each rule timed on its own')
    p.add_argument('--compare-rules', help='another rule file whose rules are timed on their own beside the '
                   'loaded ones (taking turns, same data and load): the before/after ratio of a change')
    p.add_argument('--prometheus', default=shutil.which('prometheus') or '/usr/bin/prometheus')
    a = p.parse_args()
    a.kinds = a.kinds.split(',')
    rules = [os.path.abspath(r) for r in (a.rules or [os.path.join(REPO, 'daemonset/rules/gpu-pod-exporter.rules.yaml')])]
    templates = {}
    for k in a.kinds:
        path = os.path.join(a.templates, f'{k}.prom')
        if not os.path.exists(path):
            sys.exit(f'missing {path}: scripts/fleet-scale.sh records it (tests/series_budget.rs)')
        templates[k] = parse_template(path)
    version = subprocess.run([a.prometheus, '--version'], capture_output=True, text=True).stdout.split('\n')[0]
    print(f'{version}; {os.cpu_count()} CPUs; scrape and evaluation every {a.interval} s; '
          f'warm-up {a.warmup:g} s, measured over {a.measure:g} s')
    results = []
    for n in [int(x) for x in a.nodes.split(',')]:
        for r in rules:
            results.append(run(a, templates, n, r))
    names = sorted({g for r in results for g in r['groups']})
    short = [g.split('.', 1)[-1] for g in names]
    qnames = sorted({q for r in results for q in r['queries']})
    print('\nrule groups: median ms per evaluation in place (beside scrapes and each other); cost in place: '
          'ms of rule evaluation per second (each group\'s duration over its interval); alone: every rule '
          'timed on its own, one round and ms/s at the groups\' intervals, and per 1,000 head series; '
          'queries: median ms')
    print('\n| rules | nodes | head series | samples/s | RSS MiB | CPU % | ' + ' | '.join(short)
          + ' | cost in place ms/s | alone: one round ms | alone ms/s | alone µs/s per 1k series | '
          + 'compared file alone ms/s | '
          + ' | '.join(qnames) + ' | load |')
    print('|' + '---|' * (12 + len(names) + len(qnames)))
    for r in results:
        rel = os.path.relpath(r['rules'], REPO) if r['rules'].startswith(REPO) else os.path.basename(r['rules'])
        print(f'| {rel} | {r["nodes"]} | {r["head"]:,.0f} | {r["ingest"]:,.0f} | {r["rss"]:,.0f} | {r["cpu"]:.0f} | '
              + ' | '.join(f'{r["groups"][g]:.1f}' if g in r['groups'] else '' for g in names)
              + f' | {r["cost"]:.2f} | {r["round_ms"]:.0f} | {r["alone"]:.2f} | {r["alone"] / r["head"] * 1e6:.1f} | '
              + (f'{r["other_alone"]:.2f} | ' if r['other_alone'] else ' | ')
              + ' | '.join(f'{r["queries"].get(q, 0):.1f}' for q in qnames) + f' | {r["load"]} |')


if __name__ == '__main__':
    main()
