//! Reading the operator's small files (the web config and the PEM files it names): regular
//! files only, at most [`MAX_BYTES`], and never waited for longer than [`READ_TIMEOUT`], so a
//! wrong path (`/dev/zero`, a FIFO, a hung network mount) is an error, not a hung or bloated
//! agent.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// The largest file read: a web config with a few hundred users and a certificate chain is
/// tens of KiB, so 1 MiB is generous, and bounds what a wrong path can cost.
pub const MAX_BYTES: u64 = 1 << 20;

/// How long one file may take to read before the load fails.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads the regular file at `path`, at most `MAX_BYTES`, within `READ_TIMEOUT`.
///
/// # Errors
///
/// The file cannot be opened or read, is not a regular file (a FIFO, a device, a directory),
/// is larger than `MAX_BYTES`, or does not finish reading within `READ_TIMEOUT` (the read
/// then goes on on a thread of its own, whose result is dropped).
pub fn read_small(path: &Path) -> io::Result<Vec<u8>> {
    read_with(path.to_path_buf(), MAX_BYTES, READ_TIMEOUT)
}

fn read_with(path: PathBuf, limit: u64, timeout: Duration) -> io::Result<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::Builder::new()
        .name("read-config".into())
        .spawn(move || {
            let _ = tx.send(read_bounded(&path, limit));
        })?;
    match rx.recv_timeout(timeout) {
        Ok(result) => result,
        Err(mpsc::RecvTimeoutError::Timeout) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("not read within {timeout:?}"),
        )),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(io::Error::other(
            "the reading thread ended without an answer",
        )),
    }
}

fn read_bounded(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer. The type is
    // checked on the opened file, so a swap between a check and the open cannot slip through.
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::IsADirectory,
            "is a directory, not a file",
        ));
    }
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    if meta.len() > limit {
        return Err(too_large(limit));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    // A file that grows while it is read stops at the limit too.
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(limit));
    }
    Ok(bytes)
}

fn too_large(limit: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("larger than {limit} bytes"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_regular_file_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.yml");
        std::fs::write(&path, "basic_auth_users: {}\n").unwrap();
        assert_eq!(read_small(&path).unwrap(), b"basic_auth_users: {}\n");
    }

    #[test]
    fn devices_fifos_and_directories_are_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo(3) on a NUL-terminated path in our own temporary folder.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        for path in [Path::new("/dev/zero"), fifo.as_path(), dir.path()] {
            let e = read_small(path).unwrap_err();
            assert!(
                e.to_string().contains("not a regular file") || e.to_string().contains("directory"),
                "{}: {e}",
                path.display()
            );
        }
    }

    #[test]
    fn a_file_over_the_limit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.yml");
        std::fs::write(&path, vec![b'#'; 2000]).unwrap();
        let e = read_with(path.clone(), 1000, READ_TIMEOUT).unwrap_err();
        assert!(e.to_string().contains("larger than 1000 bytes"), "{e}");
        assert_eq!(read_with(path, 2000, READ_TIMEOUT).unwrap().len(), 2000);
    }
}
