//! A nats-server of our own on 127.0.0.1, for tests and the benchmark.
//!
//! Hand-written (a child process and its log) because no crate starts a
//! nats-server binary; the store lives in a temporary directory removed on
//! drop, and a restart reuses the port and the store, as a broker restart
//! in production would.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::Error;

/// How long the server may take to listen for clients.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// The log line that carries the port.
const LISTENING: &str = "Listening for client connections on ";

/// A nats-server child process with JetStream, a random port and a
/// temporary store; killed and its store removed on drop.
#[derive(Debug)]
pub struct LocalServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl LocalServer {
    /// Starts `nats-server` from `PATH` on 127.0.0.1, a random port, with
    /// JetStream storing into a fresh temporary directory.
    ///
    /// # Errors
    ///
    /// [`Error::Server`] when the binary cannot run or does not report its
    /// port within 20 s.
    pub fn start() -> Result<LocalServer, Error> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!(
            "gearshift-nats-{}-{nanos}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::Server(format!("cannot create {}: {e}", dir.display())))?;
        let (child, port) = spawn(&dir, None)?;
        Ok(LocalServer {
            child: Some(child),
            port,
            dir,
        })
    }

    /// A server for an integration test: `None`, with the reason printed,
    /// when `nats-server` is not on `PATH`.
    ///
    /// # Panics
    ///
    /// When the server cannot start and the environment variable `CI` is
    /// set: on CI a skipped test is a failed test.
    pub fn for_test() -> Option<LocalServer> {
        match LocalServer::start() {
            Ok(s) => Some(s),
            Err(e) if std::env::var_os("CI").is_some() => {
                panic!("CI is set and no nats-server could start: {e}")
            }
            Err(e) => {
                println!("skipped: no nats-server ({e}); install the nats-server package");
                None
            }
        }
    }

    /// The URL clients connect to.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server with SIGKILL (no clean shutdown), keeping its store.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and store (killing it
    /// first if it runs).
    ///
    /// # Errors
    ///
    /// [`Error::Server`] as for [`LocalServer::start`].
    pub fn restart(&mut self) -> Result<(), Error> {
        self.kill();
        let (child, _) = spawn(&self.dir, Some(self.port))?;
        self.child = Some(child);
        Ok(())
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs nats-server and reads its log until it names its client port; a
/// thread keeps draining the log so the server never blocks on the pipe.
fn spawn(dir: &std::path::Path, port: Option<u16>) -> Result<(Child, u16), Error> {
    let port_arg = port.map_or_else(|| "-1".to_owned(), |p| p.to_string());
    let mut child = Command::new("nats-server")
        .args(["-a", "127.0.0.1", "-p", &port_arg, "-js", "-sd"])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Server(format!("cannot run nats-server: {e}")))?;
    let stderr = child
        .stderr
        .take()
        .ok_or_else(|| Error::Server("no log pipe".into()))?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split(LISTENING).nth(1)
                && let Some(port) = rest.trim().rsplit(':').next()
                && let Ok(port) = port.parse::<u16>()
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(port);
            }
        }
    });
    match rx.recv_timeout(START_TIMEOUT) {
        Ok(port) => Ok((child, port)),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(Error::Server(
                "nats-server did not report its client port".into(),
            ))
        }
    }
}
