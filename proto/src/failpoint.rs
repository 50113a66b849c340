//! Test only: what the failpoints of the coordinator and the workers share. A failpoint fires for
//! the first process to claim its marker file (created with `create_new`, so one wins across all
//! the processes that share the path), which then records itself in the marker and may stop its
//! whole process with SIGSTOP, for the test to act on a process frozen at a precise moment.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::Path;

/// Appends `line` to `marker` in one write.
pub fn append(marker: &Path, line: &str) -> io::Result<()> {
    OpenOptions::new()
        .append(true)
        .open(marker)
        .and_then(|mut file| file.write_all(line.as_bytes()))
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("test failpoint: cannot write to {}: {e}", marker.display()),
            )
        })
}

/// SIGSTOP to this process: every thread stops until a SIGCONT.
pub fn stop_this_process() -> io::Result<()> {
    // SAFETY: raise only sends a signal to the calling thread, which for SIGSTOP stops the whole
    // process; it touches no memory of ours.
    let sent = unsafe { libc::raise(libc::SIGSTOP) };
    if sent != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Creates `marker`; false if it already exists.
pub fn claim(marker: &Path) -> io::Result<bool> {
    match OpenOptions::new().write(true).create_new(true).open(marker) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("test failpoint: cannot create {}: {e}", marker.display()),
        )),
    }
}
