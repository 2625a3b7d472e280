//! camctl: the operator's and analyst's tool. Reads the event store directly (it needs
//! `DATABASE_URL`), so it works while the services are down.
//!
//! Exit codes: 0 done, 1 failed (the reason on stderr), 2 bad usage, 3 nothing to do (e.g. a
//! superuser exists already).

use std::{
    io::{BufWriter, Write},
    process::ExitCode,
};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};
use command_api::store::{self, EventFilter};
use shared::EventEnvelope;
use sqlx::PgPool;

#[derive(Parser)]
#[command(name = "camctl", version, about = "Inspect and operate CamReviews", long_about = None)]
struct Cli {
    /// The command side's PostgreSQL database.
    #[arg(long, env = "DATABASE_URL", default_value = shared::config::DEFAULT_DATABASE_URL, global = true)]
    database_url: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Read the event history.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Inspect the outbox relay that publishes events to NATS.
    #[command(subcommand)]
    Relay(RelayCommand),
    /// Manage users directly in the event store.
    #[command(subcommand)]
    Users(UsersCommand),
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Create the first superuser (an admin nobody else can change). Exits 3 if one exists.
    ///
    /// The password is asked for without echo, or read from standard input when it is not a
    /// terminal: `echo "$PW" | camctl users create-superuser --username root --email root@example.com`
    CreateSuperuser {
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: String,
    },
}

#[derive(Subcommand)]
enum EventsCommand {
    /// Print every stored event after a position or since a time, in position order.
    Replay(ReplayArgs),
}

#[derive(Args)]
struct ReplayArgs {
    /// Start after this global position (0 = from the beginning).
    #[arg(long, default_value_t = 0)]
    from_position: i64,
    /// Only events that occurred at or after this time (RFC 3339, e.g. 2026-11-01T00:00:00Z).
    #[arg(long)]
    since: Option<DateTime<Utc>>,
    /// Only events of this type (repeat for several), e.g. --type ProductCreated.
    #[arg(long = "type", value_name = "EVENT_TYPE")]
    types: Vec<String>,
    /// ndjson: one envelope per line; table: a readable summary.
    #[arg(long, value_enum, default_value_t = Format::Ndjson)]
    format: Format,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Ndjson,
    Table,
}

#[derive(Subcommand)]
enum RelayCommand {
    /// Show how far the relay has published and how far behind it is.
    Status,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = async {
        let pool = PgPool::connect(&cli.database_url)
            .await
            .context("connecting to PostgreSQL (DATABASE_URL)")?;
        match cli.command {
            Command::Events(EventsCommand::Replay(args)) => replay(&pool, args).await,
            Command::Relay(RelayCommand::Status) => relay_status(&pool).await,
            Command::Users(UsersCommand::CreateSuperuser { username, email }) => {
                return create_superuser(&cli.database_url, &username, &email).await;
            }
        }
        .map(|()| ExitCode::SUCCESS)
    }
    .await;
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn replay(pool: &PgPool, args: ReplayArgs) -> anyhow::Result<()> {
    let filter = EventFilter {
        event_types: args.types,
        since: args.since,
        ..Default::default()
    };
    let mut out = BufWriter::new(std::io::stdout().lock());
    if matches!(args.format, Format::Table) {
        writeln!(
            out,
            "{:>10}  {:<27}  {:<22}  {:<45}  {:>7}",
            "POSITION", "OCCURRED AT", "TYPE", "AGGREGATE", "VERSION"
        )?;
    }
    let mut after = args.from_position;
    loop {
        let page = store::read_all(pool, after, 1000, &filter)
            .await
            .context("reading events")?;
        let Some(last) = page.last() else { break };
        after = last.position;
        for event in &page {
            write_event(&mut out, event, args.format)?;
        }
    }
    out.flush()?;
    Ok(())
}

fn write_event(out: &mut impl Write, event: &EventEnvelope, format: Format) -> anyhow::Result<()> {
    match format {
        Format::Ndjson => {
            serde_json::to_writer(&mut *out, event)?;
            writeln!(out)?;
        }
        Format::Table => writeln!(
            out,
            "{:>10}  {:<27}  {:<22}  {:<45}  {:>7}",
            event.position,
            event
                .occurred_at
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            event.event_type,
            format!("{}/{}", event.aggregate_type, event.aggregate_id),
            event.aggregate_version,
        )?,
    }
    Ok(())
}

async fn relay_status(pool: &PgPool) -> anyhow::Result<()> {
    let (published, updated_at, last, pending): (Option<i64>, Option<DateTime<Utc>>, i64, i64) =
        sqlx::query_as(
            "WITH p AS (SELECT position, updated_at FROM relay_progress WHERE name = 'events')
             SELECT (SELECT position FROM p), (SELECT updated_at FROM p),
                    (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM events_position_seq),
                    (SELECT count(*) FROM events WHERE position > coalesce((SELECT position FROM p), 0))",
        )
        .fetch_one(pool)
        .await
        .context("reading relay progress")?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "published up to position  {}", published.unwrap_or(0))?;
    writeln!(out, "last position handed out  {last}")?;
    writeln!(out, "events not yet published  {pending}")?;
    match updated_at {
        Some(at) => writeln!(out, "progress last moved       {}", at.to_rfc3339())?,
        None => writeln!(out, "progress last moved       never")?,
    }
    Ok(())
}

async fn create_superuser(
    database_url: &str,
    username: &str,
    email: &str,
) -> anyhow::Result<ExitCode> {
    use std::io::IsTerminal as _;

    use command_api::{
        domain::values::{Email, Password, Username},
        identity::superuser::{self, SuperuserSeed},
    };

    let username = Username::parse(username).map_err(|e| anyhow::anyhow!("--username {e}"))?;
    let email = Email::parse(email).map_err(|e| anyhow::anyhow!("--email {e}"))?;
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        let second = rpassword::prompt_password("Repeat password: ")?;
        anyhow::ensure!(first == second, "the passwords differ");
        first
    } else {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    let password = Password::parse(&password).map_err(|e| anyhow::anyhow!("the password {e}"))?;
    let pool = command_api::store::connect(database_url, 2).await?;
    let seed = SuperuserSeed {
        username,
        email,
        password,
    };
    if superuser::ensure(&pool, &seed).await? {
        writeln!(
            std::io::stdout(),
            "created superuser {}",
            seed.username.as_str()
        )?;
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("a superuser exists already; nothing done");
        Ok(ExitCode::from(3))
    }
}
