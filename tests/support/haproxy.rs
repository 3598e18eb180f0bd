//! A real HAProxy (Debian's `haproxy` package) in front of test servers: the
//! test writes its configuration into a temporary directory, HAProxy runs in
//! the foreground (`-db`) as a child process, and is killed when dropped.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long HAProxy may take to listen on every frontend.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

pub struct HaProxy {
    child: Child,
    _dir: tempfile::TempDir,
}

/// The binary: on PATH, or where Debian puts it (root's PATH has sbin, a
/// plain user's may not).
fn binary() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join("haproxy"))
        .find(|candidate| candidate.is_file());
    let fallback = PathBuf::from("/usr/sbin/haproxy");
    match on_path.or_else(|| fallback.is_file().then_some(fallback)) {
        Some(path) => path,
        None => {
            panic!("haproxy not found: install it with `apt-get install haproxy` (Debian/Ubuntu)")
        }
    }
}

impl HaProxy {
    /// Starts HAProxy with `sections` (frontends and backends) after common
    /// TCP-mode defaults, and waits until every address in `frontends`
    /// accepts connections.
    pub fn start(sections: &str, frontends: &[SocketAddr]) -> HaProxy {
        let dir = tempfile::tempdir().expect("temporary directory");
        let config = dir.path().join("haproxy.cfg");
        let text = format!(
            "global\n    maxconn 1000\n\n\
             defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 5m\n    \
             timeout server 5m\n    timeout check 1s\n\n{sections}\n"
        );
        std::fs::write(&config, text).expect("write the HAProxy configuration");
        let child = Command::new(binary())
            .arg("-f")
            .arg(&config)
            .arg("-db")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start haproxy");
        let mut haproxy = HaProxy { child, _dir: dir };
        haproxy.wait_for(frontends);
        haproxy
    }

    fn wait_for(&mut self, frontends: &[SocketAddr]) {
        let started = Instant::now();
        for frontend in frontends {
            while TcpStream::connect_timeout(frontend, Duration::from_millis(200)).is_err() {
                if let Ok(Some(status)) = self.child.try_wait() {
                    panic!("haproxy exited at start-up ({status}): check its configuration");
                }
                assert!(
                    started.elapsed() < STARTUP_TIMEOUT,
                    "haproxy did not listen on {frontend} in time"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
