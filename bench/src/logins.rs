//! Logins: command-api run as its own process (the release binary next to this one), logins
//! per second from this process next to a raw loop of argon2 verifications on as many
//! threads as command-api hashes with (the limit), and command-api's resident memory before
//! and after bursts of 60 logins, 30 at a time (issue 15: it used to grow by ~850 MiB).

use std::time::{Duration, Instant};

use argon2::{
    Argon2,
    password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString},
};
use serde_json::json;

use crate::stats::{Row, measure, summarise};

const USER: &str = "bench-admin";
const PASSWORD: &str = "bench-password-1";

struct Child(tokio::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

fn resident_mib(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .ok_or_else(|| anyhow::anyhow!("no VmRSS"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?;
    Ok(kib / 1024.0)
}

pub async fn run(
    admin_url: &str,
    nats_url: &str,
    concurrency: &[usize],
    duration: Duration,
) -> anyhow::Result<Vec<Row>> {
    let binary = std::env::current_exe()?.with_file_name("command-api");
    anyhow::ensure!(
        binary.exists(),
        "{} is missing: cargo build --release -p camreviews-command-api",
        binary.display()
    );
    let scratch = crate::store::ScratchDatabase::create(admin_url).await?;
    let outcome = async {
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
            probe.local_addr()?.port()
        };
        let data_dir = std::env::temp_dir().join(format!("camreviews-bench-{port}"));
        let hash_threads = std::thread::available_parallelism().map_or(2, usize::from);
        let child = Child(
            tokio::process::Command::new(&binary)
                .env("COMMAND_API_ADDR", format!("127.0.0.1:{port}"))
                .env("DATABASE_URL", scratch.url.as_str())
                .env("NATS_URL", nats_url)
                .env("NATS_PREFIX", format!("bench{port}"))
                .env("CAMREVIEWS_DATA_DIR", &data_dir)
                .env("SUPERUSER_USERNAME", USER)
                .env("SUPERUSER_EMAIL", "bench@camreviews.local")
                .env("SUPERUSER_PASSWORD", PASSWORD)
                .env("RATE_LIMIT_ANONYMOUS", "0")
                // Each worker is a client of its own behind a gateway (X-Real-IP): one client
                // would be held to a few logins in flight by the login throttle.
                .env("TRUST_PROXY_HEADERS", "true")
                .env("RUST_LOG", "warn")
                .kill_on_drop(true)
                .spawn()?,
        );
        let pid = child
            .0
            .id()
            .ok_or_else(|| anyhow::anyhow!("command-api exited"))?;
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let started = Instant::now();
        while client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .map(|r| r.status().is_success())
            .ok()
            != Some(true)
        {
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(60),
                "command-api did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let login = {
            let client = client.clone();
            let url = format!("{base}/api/v1/auth/login");
            move |worker: usize| {
                let client = client.clone();
                let url = url.clone();
                async move {
                    let answer = client
                        .post(&url)
                        .header(
                            "x-real-ip",
                            format!("10.0.{}.{}", worker / 250, worker % 250),
                        )
                        .json(&json!({ "username": USER, "password": PASSWORD }))
                        .send()
                        .await?;
                    anyhow::ensure!(
                        answer.status().is_success() || answer.status() == 503,
                        "login answered {}",
                        answer.status()
                    );
                    Ok(())
                }
            }
        };
        login(0).await?;
        let mut rows = Vec::new();
        let before = resident_mib(pid)?;
        for _ in 0..2 {
            let burst = (0..30).map(&login);
            for outcome in futures::future::join_all(burst).await {
                outcome?;
            }
        }
        let after_60 = resident_mib(pid)?;
        for _ in 0..8 {
            let burst = (0..30).map(&login);
            for outcome in futures::future::join_all(burst).await {
                outcome?;
            }
        }
        let after_300 = resident_mib(pid)?;
        for (name, mib) in [
            ("rss MiB, before the bursts", before),
            ("rss MiB, after 60 logins", after_60),
            ("rss MiB, after 300 logins", after_300),
        ] {
            rows.push(Row {
                scenario: name.to_owned(),
                concurrency: 30,
                ops_per_sec: mib,
                p50_ms: 0.0,
                p99_ms: 0.0,
                operations: 0,
            });
        }
        rows.push(raw_verify_loop(hash_threads, duration).await?);
        for &c in concurrency {
            rows.push(measure("login (command-api)", c, duration, login.clone()).await?);
        }
        drop(child);
        let _ = std::fs::remove_dir_all(data_dir);
        anyhow::Ok(rows)
    }
    .await;
    scratch.drop().await?;
    outcome
}

/// The limit: argon2 verifications (the parameters command-api uses) on `threads` threads.
async fn raw_verify_loop(threads: usize, duration: Duration) -> anyhow::Result<Row> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    let stored = Argon2::default()
        .hash_password(PASSWORD.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .to_string();
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let stored = stored.clone();
            std::thread::spawn(move || {
                let mut latencies = Vec::new();
                while started.elapsed() < duration {
                    let t = Instant::now();
                    let parsed = PasswordHash::new(&stored).map_err(|e| anyhow::anyhow!("{e}"))?;
                    Argon2::default()
                        .verify_password(PASSWORD.as_bytes(), &parsed)
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                    latencies.push(t.elapsed());
                }
                anyhow::Ok(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(
            worker
                .join()
                .map_err(|_| anyhow::anyhow!("a verify thread panicked"))??,
        );
    }
    Ok(summarise(
        "raw argon2 verify loop (the limit)",
        threads,
        latencies,
        started.elapsed(),
    ))
}
