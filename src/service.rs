//! Running as a service: a SIGTERM/SIGINT handler that stops the run cleanly and tells systemd
//! `STOPPING=1` (sd_notify(3)); the log style for stderr ([`log_style`], [`JournalStderr`]: no
//! colour codes or second timestamps in the journal, and each record's priority); see
//! [`crate::sink::systemd`] for READY / WATCHDOG and `systemd/c3n-edge.service` for the unit
//! (docs/integration-conventions.md §5).

use std::io::{IsTerminal, StderrLock, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

use crate::control::RunControl;

/// Errors installing the signal handler.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// `sigaction` or the signal pipe could not be set up.
    #[error("cannot install the SIGTERM/SIGINT handler: {0}")]
    Signal(#[source] std::io::Error),
    /// The handler thread could not be started.
    #[error("cannot start the signal thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// Makes a write past the file-size limit (`ulimit -f`, RLIMIT_FSIZE) fail with EFBIG, which the
/// output reports as an error naming its file, instead of SIGXFSZ killing the process with a
/// half-written output.
pub fn ignore_file_size_signal() {
    // SAFETY: SIG_IGN installs no handler code; signal(2) only changes the disposition.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

/// Installs a SIGTERM/SIGINT handler (a background thread, `signal-hook`). The first signal
/// sends `STOPPING=1` to `$NOTIFY_SOCKET` (when set) and calls [`RunControl::request_stop`]: the
/// pipeline stops feeding the engine, finishes the window in progress, emits the final `end`
/// events, and the sinks finish cleanly (MQTT publishes its final state and `offline`). A second
/// signal exits at once with status 128 + signal. systemd kills the process anyway after
/// `TimeoutStopSec=`.
///
/// Errors: [`ServiceError`] when the handler or its thread cannot be set up.
pub fn stop_on_signals(control: Arc<RunControl>) -> Result<(), ServiceError> {
    let mut signals = Signals::new([SIGTERM, SIGINT]).map_err(ServiceError::Signal)?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut n = 0;
            for sig in signals.forever() {
                n += 1;
                if n > 1 {
                    eprintln!("c3n-edge: second signal {sig}, exiting now");
                    std::process::exit(128 + sig);
                }
                tracing::warn!("signal {sig}: stopping after the current window");
                if let Err(e) = sd_notify::notify(&[
                    sd_notify::NotifyState::Stopping,
                    sd_notify::NotifyState::Status("stopping on a signal"),
                ]) {
                    tracing::warn!("cannot notify systemd STOPPING=1: {e}");
                }
                control.request_stop();
            }
        })
        .map_err(ServiceError::Thread)?;
    Ok(())
}

/// How log lines on stderr should look; see [`log_style`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogStyle {
    /// ANSI colour codes: only when stderr is a terminal and `$NO_COLOR` is unset or empty
    /// (no-color.org). Elsewhere they end up as escape sequences in files and in the journal.
    pub ansi: bool,
    /// stderr is the systemd journal: no timestamp of our own (journald records one for every
    /// line) and the sd-daemon(3) priority prefixes of [`JournalStderr`].
    pub journal: bool,
}

/// The [`LogStyle`] for this process's stderr. stderr is the journal when `$JOURNAL_STREAM`
/// (`<device>:<inode>`, set by systemd for `StandardError=journal`; systemd.exec(5),
/// "Environment variables in spawned processes") names the device and inode of stderr itself, as
/// systemd recommends checking (a child whose stderr was redirected inherits the variable).
pub fn log_style() -> LogStyle {
    let stderr = std::io::stderr();
    let journal = std::env::var("JOURNAL_STREAM")
        .map(|v| is_stream(stderr.as_fd(), &v))
        .unwrap_or(false);
    LogStyle {
        ansi: stderr.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        journal,
    }
}

/// A [`MakeWriter`] for stderr when it is the journal: every log record starts with the
/// sd-daemon(3) priority prefix (`<3>` error, `<4>` warn, `<6>` info, `<7>` debug and trace),
/// which journald strips and stores as the record's `PRIORITY=`, so that
/// `journalctl -u c3n-edge -p warning` shows the warnings and errors. Without it every line of a
/// service's stderr has priority info (systemd.exec(5), `SyslogLevelPrefix=`, on by default).
#[derive(Debug, Clone, Copy, Default)]
pub struct JournalStderr;

/// One log record's writer from [`JournalStderr`]: holds the stderr lock for the record and
/// writes the priority prefix before its first byte.
#[derive(Debug)]
pub struct PrefixedStderr {
    out: StderrLock<'static>,
    prefix: Option<&'static [u8]>,
}

impl Write for PrefixedStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(p) = self.prefix.take() {
            self.out.write_all(p)?;
        }
        self.out.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// The sd-daemon(3) prefix for a tracing level (syslog priorities: err 3, warning 4, info 6,
/// debug 7).
pub fn priority_prefix(level: &Level) -> &'static [u8] {
    match *level {
        Level::ERROR => b"<3>",
        Level::WARN => b"<4>",
        Level::INFO => b"<6>",
        Level::DEBUG | Level::TRACE => b"<7>",
    }
}

impl<'a> MakeWriter<'a> for JournalStderr {
    type Writer = PrefixedStderr;

    fn make_writer(&'a self) -> Self::Writer {
        PrefixedStderr {
            out: std::io::stderr().lock(),
            prefix: Some(priority_prefix(&Level::INFO)),
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        PrefixedStderr {
            out: std::io::stderr().lock(),
            prefix: Some(priority_prefix(meta.level())),
        }
    }
}

/// Whether `fd` is the file named by a `$JOURNAL_STREAM` value `<device>:<inode>` (decimal).
/// False for a malformed value or an fd that cannot be inspected.
pub fn is_stream(fd: BorrowedFd<'_>, journal_stream: &str) -> bool {
    let Some((dev, ino)) = journal_stream.trim().split_once(':') else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    fd.try_clone_to_owned()
        .map(std::fs::File::from)
        .and_then(|f| f.metadata())
        .map(|m| m.dev() == dev && m.ino() == ino)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_stream_matches_only_its_own_file() {
        let dir = std::env::temp_dir().join(format!("c3n-journal-stream-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = std::fs::File::create(dir.join("a")).unwrap();
        let b = std::fs::File::create(dir.join("b")).unwrap();
        let m = a.metadata().unwrap();
        let value = format!("{}:{}", m.dev(), m.ino());
        assert!(is_stream(a.as_fd(), &value));
        assert!(is_stream(a.as_fd(), &format!("{value}\n")));
        assert!(!is_stream(b.as_fd(), &value));
        for bad in ["", "12", "x:1", "1:y", ":"] {
            assert!(!is_stream(a.as_fd(), bad), "{bad:?}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn priority_prefixes_follow_syslog() {
        assert_eq!(priority_prefix(&Level::ERROR), b"<3>");
        assert_eq!(priority_prefix(&Level::WARN), b"<4>");
        assert_eq!(priority_prefix(&Level::INFO), b"<6>");
        assert_eq!(priority_prefix(&Level::DEBUG), b"<7>");
        assert_eq!(priority_prefix(&Level::TRACE), b"<7>");
    }
}
