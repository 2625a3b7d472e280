//! A service binary run as its own process (for tests that need separate processes: two
//! projector instances, a kill -9), killed when dropped.

use std::{process::Stdio, time::Duration};

use tokio::process::{Child, Command};

pub struct Process {
    pub port: u16,
    child: Child,
}

impl Process {
    /// Starts the workspace binary `name` with `env` (plus `<ADDR_VAR>` on a free port) and
    /// waits until its `/readyz` answers 200.
    pub async fn start(name: &str, addr_var: &str, env: &[(&str, String)]) -> Self {
        let port = crate::free_port();
        let mut command = Command::new(crate::binary(name));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env(addr_var, format!("127.0.0.1:{port}"))
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .stderr(if std::env::var_os("TEST_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .kill_on_drop(true);
        let child = command.spawn().unwrap();
        let process = Self { port, child };
        let client = reqwest::Client::new();
        for _ in 0..400 {
            let ready = client
                .get(process.url("/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if ready {
                return process;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("{name} did not become ready");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Signs in through this process (a command-api) and returns the access token.
    pub async fn login(&self, username: &str, password: &str) -> String {
        let login: serde_json::Value = crate::json_of(
            reqwest::Client::new()
                .post(self.url("/api/v1/auth/login"))
                .json(&serde_json::json!({ "username": username, "password": password })),
        )
        .await;
        login["access_token"].as_str().unwrap().to_owned()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// SIGTERM: the graceful stop an orchestrator asks for.
    pub fn terminate(&self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
    }

    /// Waits for the process to exit.
    pub async fn wait(&mut self) -> std::process::ExitStatus {
        self.child.wait().await.unwrap()
    }

    /// SIGKILL: no graceful anything.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }
}
