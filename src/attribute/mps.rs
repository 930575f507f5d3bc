//! Telling the MPS server among a device's processes (docs/attribution.md, rule 7): by its command name
//! in `<procfs>/<pid>/comm`, and, where that cannot be read, by NVML's MPS client list.

use std::io::Read;
use std::path::Path;

/// `/proc/<pid>/comm` of the MPS server. The kernel cuts a command name to 15 bytes, so
/// `nvidia-cuda-mps-server` reads `nvidia-cuda-mps`; `nvidia-cuda-mps-control`, cut the same,
/// holds no GPU context and never appears in the driver's process list.
const MPS_SERVER_COMM: [&str; 2] = ["nvidia-cuda-mps", "nvidia-cuda-mps-server"];

/// What a process's command name says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Comm {
    MpsServer,
    /// Another program.
    Other,
    /// `comm` could not be read (the process is gone, or procfs hides it).
    Unreadable,
}

impl Comm {
    /// Reads `<procfs>/<pid>/comm`.
    pub(super) fn read(procfs: &Path, pid: u32) -> Comm {
        let path = procfs.join(pid.to_string()).join("comm");
        // A command name is at most 15 bytes and a newline: no allocation for it.
        let mut buf = [0u8; 32];
        let Ok(n) = std::fs::File::open(path).and_then(|mut f| f.read(&mut buf)) else {
            return Comm::Unreadable;
        };
        let comm = buf.get(..n).unwrap_or_default();
        let comm = comm.strip_suffix(b"\n").unwrap_or(comm);
        if MPS_SERVER_COMM.iter().any(|m| m.as_bytes() == comm) {
            Comm::MpsServer
        } else {
            Comm::Other
        }
    }

    /// Whether a process is the MPS server. Its command name decides where it can be read.
    /// Where it cannot, NVML does: on a device whose MPS list names clients, a process in the
    /// compute list that is not among them is the server (`nvml_says_server`). A name that
    /// reads as another program outweighs NVML: in the default compute mode a process that
    /// does not use MPS can run beside MPS clients.
    pub(super) fn is_mps_server(self, nvml_says_server: bool) -> bool {
        match self {
            Comm::MpsServer => true,
            Comm::Other => false,
            Comm::Unreadable => nvml_says_server,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_is_told_by_its_name_then_by_nvml() {
        let dir = tempfile::tempdir().unwrap();
        let proc = dir.path();
        // What the kernel shows of each name (15 bytes at most), and a process with no comm.
        for (pid, comm) in [
            (1, "nvidia-cuda-mps\n"),
            (2, "nvidia-cuda-mps-server\n"),
            (3, "python3\n"),
            (4, "nvidia-cuda-mp\n"),
        ] {
            std::fs::create_dir_all(proc.join(pid.to_string())).unwrap();
            std::fs::write(proc.join(format!("{pid}/comm")), comm).unwrap();
        }
        let read = |pid| Comm::read(proc, pid);
        assert_eq!(read(1), Comm::MpsServer);
        assert_eq!(read(2), Comm::MpsServer);
        assert_eq!(read(3), Comm::Other);
        assert_eq!(read(4), Comm::Other);
        assert_eq!(read(5), Comm::Unreadable);
        for nvml in [false, true] {
            assert!(read(1).is_mps_server(nvml));
            assert!(!read(3).is_mps_server(nvml));
        }
        assert!(read(5).is_mps_server(true));
        assert!(!read(5).is_mps_server(false));
    }
}
