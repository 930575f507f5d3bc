//! The `gpu-pod-exporter` binary: parses the command line, starts the collectors, the snapshot
//! stage and the HTTP server, and stops them on SIGTERM or SIGINT.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tokio::net::{TcpListener, TcpSocket};

use gpu_pod_exporter::attribute::podresources::PodResources;
use gpu_pod_exporter::attribute::stage::KubeletSource;
use gpu_pod_exporter::collect::amd::AmdBackend;
use gpu_pod_exporter::collect::nvidia::NvidiaBackend;
use gpu_pod_exporter::collect::{self, Backend, Hub};
use gpu_pod_exporter::config::{Config, Flags, ListenAddress};
use gpu_pod_exporter::encode::Encoder;
use gpu_pod_exporter::selfstats::HttpStats;
use gpu_pod_exporter::snapshot::{self, SnapshotStore};
use gpu_pod_exporter::web::reload::{self, WebSource};
use gpu_pod_exporter::web::server::{self, App, Limits};

fn main() -> ExitCode {
    let flags = match Flags::try_parse() {
        Ok(f) => f,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            // One line, naming the flag; clap's own message spans several.
            let msg = e.to_string();
            let first = msg.lines().next().unwrap_or("invalid command line");
            eprintln!("gpu-pod-exporter: {}", first.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    let config = match flags.resolve() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("gpu-pod-exporter: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&config.log_level);
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gpu-pod-exporter: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn run(config: Config) -> anyhow::Result<()> {
    // Every procfs holds pid 1 (the host's init, or a container's first process). One that does
    // not is a wrong path, whose empty listing would otherwise pass for process churn.
    if !config.paths.procfs.join("1").is_dir() {
        tracing::error!(
            procfs = %config.paths.procfs.display(),
            "the procfs holds no pid 1: it is not the host's /proc, and no GPU process can be attributed to a pod (mount the host's /proc there, or set --path.procfs)"
        );
    }
    let http = Arc::new(HttpStats::default());
    let web = match &config.web_config_file {
        Some(path) => Some(Arc::new(
            WebSource::load(path, Arc::clone(&http))
                .with_context(|| format!("--web.config.file {}", path.display()))?,
        )),
        None => None,
    };
    let open_files = raise_open_files_limit();
    let limits = Limits::for_open_files(open_files);

    let mut backends: Vec<Box<dyn Backend>> = Vec::new();
    if config.nvidia {
        backends.push(Box::new(NvidiaBackend::new(
            config.nvml_library.clone(),
            config.timing(),
            config.dcgm.clone(),
        )));
    }
    if config.amd {
        backends.push(Box::new(AmdBackend::new(&config.paths, config.rocm_smi)));
    }
    let names: Vec<&'static str> = backends.iter().map(|b| b.name()).collect();
    let (hub, nudges) = Hub::new(&names);
    let store = Arc::new(SnapshotStore::default());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("async")
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let kubelet = {
        let _in_runtime = runtime.enter();
        kubelet_source(&config)
    };
    snapshot::spawn_publisher(
        Arc::clone(&hub),
        nudges,
        Arc::clone(&store),
        config.timing(),
        config.paths.clone(),
        kubelet,
    )
    .context("starting the snapshot thread")?;
    let mut stops = Vec::new();
    for backend in backends {
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        stops.push(stop_tx);
        collect::spawn(backend, config.timing(), Arc::clone(&hub), stop_rx)
            .context("starting a collector thread")?;
    }

    let app = Arc::new(App::new(
        Encoder::new(Arc::clone(&store), Arc::clone(&http)),
        store,
        config.telemetry_path.clone(),
        web.clone(),
        http,
        limits,
    ));
    runtime.block_on(async {
        let listener = bind(&config.listen)?;
        let local = listener
            .local_addr()
            .context("reading the listen address")?;
        tokio::spawn(reload::watch(web, reload::POLL_EVERY));
        tracing::info!(
            address = %local,
            path = %config.telemetry_path,
            interval = ?config.interval,
            max_connections = limits.max_connections,
            open_files,
            "serving"
        );
        server::serve(listener, app, shutdown_signal()).await;
        anyhow::Ok(())
    })?;
    // A password check still running on a blocking thread gets half a second; the process
    // does not wait for more (the drain took at most 4 s: exit within 5 s of SIGTERM).
    runtime.shutdown_timeout(Duration::from_millis(500));
    tracing::info!("shutting down");
    drop(stops);
    hub.close();
    Ok(())
}

/// The kubelet's allocations of GPUs, polled over its pod-resources socket (absent on a node
/// without a kubelet: then there are simply no allocations). The attribution stage decides how
/// long a silent kubelet's last answer stands (`attribute::stage`).
fn kubelet_source(config: &Config) -> KubeletSource {
    let client = PodResources::spawn(
        config.paths.pod_resources_socket.clone(),
        config.interval,
        vec!["nvidia.com/".into(), "amd.com/".into()],
    );
    Box::new(move || client.latest())
}

/// Raises the soft limit on open files to the hard limit, as the Go runtime does for
/// node_exporter: every connection holds a descriptor, and a soft limit of 1024 would cap the
/// server below what the kernel queues. Returns the limit now in force.
fn raise_open_files_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            } else {
                tracing::warn!(
                    soft = lim.rlim_cur,
                    hard = lim.rlim_max,
                    "cannot raise the open files limit"
                );
            }
        }
    }
    lim.rlim_cur
}

/// Binds the listen address with a listen backlog of [`server::LISTEN_BACKLOG`]; `:port` means
/// every interface, IPv6 and IPv4 where the host has IPv6, else IPv4 only.
fn bind(listen: &ListenAddress) -> anyhow::Result<TcpListener> {
    let listen_on = |addr: SocketAddr| -> std::io::Result<TcpListener> {
        let socket = if addr.is_ipv6() {
            TcpSocket::new_v6()?
        } else {
            TcpSocket::new_v4()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(server::LISTEN_BACKLOG)
    };
    let bind_one = |addr: SocketAddr| {
        listen_on(addr).with_context(|| format!("--web.listen-address: cannot listen on {addr}"))
    };
    match listen {
        ListenAddress::Exact(addr) => bind_one(*addr),
        ListenAddress::AnyInterface(port) => {
            match listen_on(SocketAddr::from((Ipv6Addr::UNSPECIFIED, *port))) {
                Ok(l) => Ok(l),
                Err(_) => bind_one(SocketAddr::from((Ipv4Addr::UNSPECIFIED, *port))),
            }
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received"),
                _ = int.recv() => tracing::info!("SIGINT received"),
            }
        }
        _ => {
            tracing::warn!("cannot install signal handlers; stop with SIGKILL");
            std::future::pending::<()>().await;
        }
    }
}
