//! [`LocalServer`]: a throwaway nats-server with JetStream, for tests and
//! benchmarks only (one process, a temporary store, a random port on
//! 127.0.0.1). Production runs against a server or cluster you operate.
//!
//! Hand-written rather than a test-container crate: it needs no Docker, only
//! the `nats-server` binary on `PATH` (Debian's package `nats-server`), and
//! the broker-restart test needs to SIGKILL the server and start it again
//! on the same store and port, which this does in a few lines.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::error::Error;

/// How long a start may take before it is given up.
const START_DEADLINE: Duration = Duration::from_secs(15);
/// The log line that says where clients connect.
const LISTENING: &str = "Listening for client connections on ";

/// A nats-server with JetStream on 127.0.0.1 and a temporary store, for
/// tests and benchmarks. Dropping it kills the server and removes the
/// store.
#[derive(Debug)]
pub struct LocalServer {
    child: Option<Child>,
    port: u16,
    store: tempfile::TempDir,
}

impl LocalServer {
    /// Starts `nats-server -a 127.0.0.1 -p -1 -js -sd <tempdir>` from `PATH`
    /// and waits (up to 15 s) until it listens.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the store or the process cannot be created (the
    /// binary is missing), [`Error::Server`] if it exits or does not
    /// listen in time.
    pub fn start() -> Result<LocalServer, Error> {
        let store = tempfile::Builder::new()
            .prefix("gearshift-nats-")
            .tempdir()
            .map_err(|source| Error::Io {
                op: "create the server's store directory",
                source,
            })?;
        let (child, port) = spawn(&store, None)?;
        Ok(LocalServer {
            child: Some(child),
            port,
            store,
        })
    }

    /// For tests: a started server, or `None` with the reason printed when
    /// `nats-server` is not on `PATH`.
    ///
    /// # Panics
    ///
    /// When env `CI` is set and the server cannot be started (a skipped
    /// test in CI is a failure), or when the binary exists but does not
    /// start.
    pub fn for_test() -> Option<LocalServer> {
        match LocalServer::start() {
            Ok(server) => Some(server),
            Err(Error::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound
                    && std::env::var_os("CI").is_none() =>
            {
                eprintln!(
                    "skipped: nats-server is not on PATH (Debian: apt-get install nats-server)"
                );
                None
            }
            Err(e) => panic!("cannot start nats-server: {e}"),
        }
    }

    /// The URL clients connect to: `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The port it listens on (the same across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server with SIGKILL (no clean shutdown, as a crash) and
    /// waits for it to exit. The store stays for [`restart`](Self::restart).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same store and port (killing it
    /// first if it runs), and waits until it listens.
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start); a port that stays taken fails it too.
    pub fn restart(&mut self) -> Result<(), Error> {
        self.kill();
        let (child, _) = spawn(&self.store, Some(self.port))?;
        self.child = Some(child);
        Ok(())
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts nats-server on `port` (a random one if `None`) and returns it with
/// the port it listens on.
fn spawn(store: &tempfile::TempDir, port: Option<u16>) -> Result<(Child, u16), Error> {
    let port_arg = port.map_or_else(|| "-1".to_string(), |p| p.to_string());
    let mut child = Command::new("nats-server")
        .args(["-a", "127.0.0.1", "-p", &port_arg, "-js", "-sd"])
        .arg(store.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| Error::Io {
            op: "start nats-server",
            source,
        })?;
    let stderr = child
        .stderr
        .take()
        .ok_or_else(|| Error::Server("no stderr".into()))?;
    let (tx, rx) = mpsc::channel();
    // The server logs to stderr; the reader keeps draining it so the pipe
    // never fills, and hands over the port once.
    std::thread::Builder::new()
        .name("nats-server-log".into())
        .spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                tracing::trace!(target: "nats_server", "{line}");
                if let Some(port) = listening_port(&line)
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(port);
                }
            }
        })
        .map_err(|source| Error::Io {
            op: "start the server's log reader",
            source,
        })?;
    match rx.recv_timeout(START_DEADLINE) {
        Ok(port) => Ok((child, port)),
        Err(_) => {
            let _ = child.kill();
            let status = child.wait().ok();
            Err(Error::Server(format!(
                "did not listen within {START_DEADLINE:?} (exit status {status:?})"
            )))
        }
    }
}

/// The port of a "Listening for client connections on 127.0.0.1:PORT" line.
fn listening_port(line: &str) -> Option<u16> {
    let rest = &line[line.find(LISTENING)? + LISTENING.len()..];
    rest.trim().rsplit(':').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::listening_port;

    #[test]
    fn reads_the_port_from_the_log_line() {
        let line = "[42] 2026/12/06 07:00:00.000000 [INF] Listening for client connections on 127.0.0.1:34567";
        assert_eq!(listening_port(line), Some(34567));
        assert_eq!(listening_port("[INF] Server is ready"), None);
    }
}
