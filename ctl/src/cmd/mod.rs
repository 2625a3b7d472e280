//! The commands, one file each (`events replay` is `cmd/events/replay.rs`), and what a
//! finished command reports as camctl's exit code.

mod create_superuser;
mod dlq;
mod events;
mod notifier_status;
mod projections;
mod relay_status;

use std::process::ExitCode;

use crate::cli::{
    Cli, Command, DlqCommand, EventsCommand, NotifierCommand, ProjectionsCommand, RelayCommand,
    UsersCommand,
};

/// What a finished command reports, beyond success.
pub enum Done {
    Ok,
    Usage,
    NothingToDo,
    Partly,
    Busy,
}

impl From<Done> for ExitCode {
    fn from(done: Done) -> Self {
        match done {
            Done::Ok => ExitCode::SUCCESS,
            Done::Usage => ExitCode::from(2),
            Done::NothingToDo => ExitCode::from(3),
            Done::Partly => ExitCode::from(4),
            Done::Busy => ExitCode::from(5),
        }
    }
}

/// Runs the command `cli` names.
pub async fn run(cli: Cli) -> anyhow::Result<Done> {
    match &cli.command {
        Command::Events(EventsCommand::Replay(args)) => events::replay::run(&cli, args).await,
        Command::Events(EventsCommand::Tail(args)) => events::tail::run(&cli, args).await,
        Command::Projections(ProjectionsCommand::Status { format }) => {
            projections::status::run(&cli, *format).await
        }
        Command::Projections(ProjectionsCommand::Rebuild { name, break_lock }) => {
            projections::rebuild::run(&cli, name, *break_lock).await
        }
        Command::Dlq(DlqCommand::List { consumer, format }) => {
            dlq::list::run(&cli, consumer.as_deref(), *format).await
        }
        Command::Dlq(DlqCommand::Requeue {
            sequences,
            all,
            consumer,
        }) => dlq::requeue::run(&cli, sequences, *all, consumer.as_deref()).await,
        Command::Relay(RelayCommand::Status) => relay_status::run(&cli).await,
        Command::Notifier(NotifierCommand::Status) => notifier_status::run(&cli).await,
        Command::Users(UsersCommand::CreateSuperuser { username, email }) => {
            create_superuser::run(&cli, username, email).await
        }
    }
}
