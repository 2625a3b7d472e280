//! A private MongoDB-wire server (SecantusDB, from `SECANTUSD_BIN`, which `scripts/test.sh`
//! sets), for tests that make the read store unreachable without disturbing the shared one.

use std::{path::PathBuf, process::Stdio, time::Duration};

use tokio::process::{Child, Command};

pub struct MongoServer {
    pub port: u16,
    store: PathBuf,
    child: Option<Child>,
}

impl MongoServer {
    pub async fn start() -> Self {
        let store = std::env::temp_dir().join(format!("camreviews-mongo-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&store).unwrap();
        let mut server = Self {
            port: crate::free_port(),
            store,
            child: None,
        };
        server.restart().await;
        server
    }

    pub fn url(&self) -> String {
        format!("mongodb://127.0.0.1:{}/?directConnection=true", self.port)
    }

    /// Starts the server (again) on the same port and storage directory.
    pub async fn restart(&mut self) {
        let binary = std::env::var("SECANTUSD_BIN").unwrap_or_else(|_| {
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../.tools/secantus/bin/secantusd-rs"
            )
            .to_owned()
        });
        let child = Command::new(&binary)
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .arg("--storage-path")
            .arg(&self.store)
            .args(["--cache-size", "64M", "--log-file-max", "16MB"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{binary} does not start ({e}); run scripts/test.sh"));
        self.child = Some(child);
        for _ in 0..600 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "the MongoDB-wire server did not start on port {}",
            self.port
        );
    }

    /// Freezes the server (SIGSTOP): connections open, nothing answers — a network partition
    /// as clients see it.
    pub async fn pause(&self) {
        self.signal("-STOP").await;
    }

    /// Thaws a paused server (SIGCONT).
    pub async fn resume(&self) {
        self.signal("-CONT").await;
    }

    async fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().and_then(Child::id).unwrap();
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .await
            .unwrap();
        assert!(status.success());
    }

    /// Kills the server at once (SIGKILL).
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }
}

impl Drop for MongoServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.store);
    }
}
