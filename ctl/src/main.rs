//! camctl: the operator's and analyst's tool. It talks to the stores directly (PostgreSQL for
//! the event store, MongoDB for the read models, NATS for live events and dead letters), so it
//! works while the services are down.

mod cli;
mod cmd;
mod connect;
mod progress;

use std::process::ExitCode;

use clap::Parser as _;

#[tokio::main]
async fn main() -> ExitCode {
    match cmd::run(cli::Cli::parse()).await {
        Ok(done) => done.into(),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
