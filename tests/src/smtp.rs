//! A small SMTP server for mail tests: it speaks just enough SMTP for a real client (the
//! notifier's lettre transport), keeps what it accepted, and can go down and come back on
//! the same port.

use std::sync::{Arc, Mutex};

use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
    task::JoinSet,
};

#[derive(Debug, Clone)]
pub struct Received {
    pub to: Vec<String>,
    pub data: String,
}

pub struct SmtpSink {
    pub port: u16,
    mails: Arc<Mutex<Vec<Received>>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl SmtpSink {
    pub async fn start() -> Self {
        let mut sink = Self {
            port: crate::free_port(),
            mails: Arc::default(),
            server: None,
        };
        sink.restart().await;
        sink
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every mail accepted so far.
    pub fn mails(&self) -> Vec<Received> {
        self.mails.lock().unwrap().clone()
    }

    /// Closes the port and every open connection.
    pub fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }

    /// Listens (again) on the same port.
    pub async fn restart(&mut self) {
        self.stop();
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(listener) => break listener,
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        };
        let mails = self.mails.clone();
        self.server = Some(tokio::spawn(async move {
            let mut sessions = JoinSet::new();
            while let Ok((socket, _)) = listener.accept().await {
                sessions.spawn(session(socket, mails.clone()));
            }
        }));
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn session(socket: TcpStream, mails: Arc<Mutex<Vec<Received>>>) {
    let (reader, mut writer) = socket.into_split();
    let mut lines = BufReader::new(reader).lines();
    let mut to = Vec::new();
    if writer.write_all(b"220 sink ESMTP\r\n").await.is_err() {
        return;
    }
    while let Ok(Some(line)) = lines.next_line().await {
        let verb = line.get(..4).unwrap_or_default().to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-sink\r\n250 8BITMIME\r\n",
            "HELO" | "MAIL" | "RSET" | "NOOP" => {
                if verb == "RSET" {
                    to.clear();
                }
                b"250 OK\r\n"
            }
            // An address with "bounce" in it does not exist here, for good.
            "RCPT" if line.contains("bounce") => b"550 no such mailbox\r\n",
            "RCPT" => {
                to.push(line[8..].trim().trim_matches(['<', '>']).to_owned());
                b"250 OK\r\n"
            }
            "DATA" => {
                if writer.write_all(b"354 go ahead\r\n").await.is_err() {
                    return;
                }
                let mut data = String::new();
                while let Ok(Some(line)) = lines.next_line().await {
                    if line == "." {
                        break;
                    }
                    data.push_str(&line);
                    data.push('\n');
                }
                mails.lock().unwrap().push(Received {
                    to: std::mem::take(&mut to),
                    data,
                });
                b"250 OK queued\r\n"
            }
            "QUIT" => {
                let _ = writer.write_all(b"221 bye\r\n").await;
                return;
            }
            _ => b"502 not implemented\r\n",
        };
        if writer.write_all(reply).await.is_err() {
            return;
        }
    }
}

/// The new prices (`-> N.00`) the mails to `to` announce, in the order they were received and
/// written.
pub fn prices_mailed(mails: &[Received], to: &str) -> Vec<u32> {
    mails
        .iter()
        .filter(|m| m.to.iter().any(|t| t == to))
        .flat_map(|m| {
            m.data
                .split("-> ")
                .skip(1)
                .filter_map(|rest| rest.split_once(".00")?.0.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}
