//! camctl: the operator's and analyst's tool. It talks to the stores directly (PostgreSQL for
//! the event store, MongoDB for the read models, NATS for live events and dead letters), so it
//! works while the services are down.

mod dlq;
mod mail;
mod progress;
mod rebuild;
mod status;

use std::{
    io::{BufWriter, IsTerminal as _, Write},
    process::ExitCode,
};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};
use command_api::store::{self, EventFilter};
use shared::{EventEnvelope, nats::Prefix};
use sqlx::PgPool;
use uuid::Uuid;

use progress::Progress;

const EXIT_CODES: &str = "\
Exit codes:
  0  done
  1  failed (the reason is on standard error)
  2  bad usage (an unknown command, option or value)
  3  nothing to do (a superuser exists already; no dead letter matched)
  4  done in part (some events could not be applied, or some letters not requeued)
  5  busy (another rebuild is running; see `projections rebuild --break-lock`)

Connections come from the same variables the services read: DATABASE_URL, MONGODB_URL,
MONGODB_DB, NATS_URL and NATS_PREFIX (or the options above).";

#[derive(Parser)]
#[command(
    name = "camctl",
    version,
    about = "Inspect and operate CamReviews: replay and tail events, rebuild read models, \
             handle dead letters, create the first superuser.",
    after_help = EXIT_CODES
)]
struct Cli {
    /// The event store (PostgreSQL).
    #[arg(long, env = "DATABASE_URL", default_value = shared::config::DEFAULT_DATABASE_URL, global = true)]
    database_url: String,
    /// The read-model store (MongoDB).
    #[arg(long, env = "MONGODB_URL", default_value = shared::config::DEFAULT_MONGODB_URL, global = true)]
    mongodb_url: String,
    /// The read-model database.
    #[arg(long, env = "MONGODB_DB", default_value = "camreviews", global = true)]
    mongodb_db: String,
    /// The NATS server.
    #[arg(long, env = "NATS_URL", default_value = shared::config::DEFAULT_NATS_URL, global = true)]
    nats_url: String,
    /// Prefix of stream names and subjects (as the services' NATS_PREFIX).
    #[arg(long, env = "NATS_PREFIX", default_value = "", global = true)]
    nats_prefix: String,
    /// Progress bars on standard error: auto = when it is a terminal.
    #[arg(long, value_enum, default_value_t = When::Auto, global = true)]
    progress: When,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum When {
    Auto,
    Always,
    Never,
}

#[derive(Subcommand)]
enum Command {
    /// Read the event history, or follow it live.
    #[command(subcommand)]
    Events(EventsCommand),
    /// See how far the read models are, and rebuild them without downtime.
    #[command(subcommand)]
    Projections(ProjectionsCommand),
    /// List and requeue messages the consumers gave up on (the DLQ stream).
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Inspect the outbox relay that publishes events to NATS.
    #[command(subcommand)]
    Relay(RelayCommand),
    /// See how far behind admin mail is.
    #[command(subcommand)]
    Notifier(NotifierCommand),
    /// Manage users directly in the event store.
    #[command(subcommand)]
    Users(UsersCommand),
}

#[derive(Subcommand)]
enum EventsCommand {
    /// Print stored events in position order, from a position or a time, filtered.
    ///
    /// Reads the event store itself (PostgreSQL), so it sees every event, published or not.
    /// Old payloads are printed upcast to their type's current schema version.
    ///
    /// Examples:
    ///   camctl events replay --type ProductUpdated --since 2026-11-01T00:00:00Z
    ///   camctl events replay --from-position 1200 --format table
    #[command(verbatim_doc_comment)]
    Replay(ReplayArgs),
    /// Print events live as they are published on NATS, until interrupted (Ctrl-C).
    ///
    /// "New" means new on the stream: an event whose command was accepted just before the
    /// tail started, but which the outbox relay publishes just after, is shown. For an exact
    /// cut by position, use `events replay --from-position N` (the event store).
    ///
    /// Examples:
    ///   camctl events tail
    ///   camctl events tail --filter 'events.product.>' --format table
    #[command(verbatim_doc_comment)]
    Tail(TailArgs),
}

#[derive(Args)]
struct ReplayArgs {
    /// Start at this global position (inclusive; 0 or 1 = from the beginning).
    #[arg(long, default_value_t = 0, conflicts_with = "since")]
    from_position: i64,
    /// Only events that occurred at or after this time (RFC 3339).
    #[arg(long)]
    since: Option<DateTime<Utc>>,
    /// Only events that occurred before this time (RFC 3339).
    #[arg(long)]
    until: Option<DateTime<Utc>>,
    /// Only events of this type, e.g. ProductCreated (repeat for several).
    #[arg(long = "type", value_name = "EVENT_TYPE")]
    types: Vec<String>,
    /// Only events of this aggregate type: product, review or user.
    #[arg(long)]
    aggregate_type: Option<String>,
    /// Only the events of this one aggregate (a SKU, review id or user id).
    #[arg(long)]
    aggregate_id: Option<Uuid>,
    /// ndjson: one envelope per line; table: a readable summary.
    #[arg(long, value_enum, default_value_t = Format::Ndjson)]
    format: Format,
}

#[derive(Args)]
struct TailArgs {
    /// A NATS subject filter within the events, e.g. 'events.product.>' or
    /// 'events.*.*.ProductDeleted' (NATS_PREFIX is added for you).
    #[arg(long, default_value = "events.>")]
    filter: String,
    /// Start with the events published since this time (RFC 3339) instead of only new ones.
    #[arg(long)]
    since: Option<DateTime<Utc>>,
    /// Stop after this many events.
    #[arg(long)]
    count: Option<u64>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Ndjson,
    Table,
}

#[derive(Subcommand)]
enum ProjectionsCommand {
    /// How far the read models are: applied position, lag behind the event store, documents
    /// per read model, last rebuild, dead letters.
    Status {
        #[arg(long, value_enum, default_value_t = StatusFormat::Table)]
        format: StatusFormat,
    },
    /// Rebuild read models from the event store while the old ones keep serving, then switch
    /// to the new ones at once. View tallies are kept.
    ///
    /// Each model is built into shadow collections, caught up with the live stream and
    /// swapped in by an atomic rename: readers see the old complete model or the new one,
    /// never a half-built one. Events no projection can apply are listed (exit code 4).
    Rebuild {
        /// users, products (with their history), reviews (with their images), or all.
        #[arg(value_parser = ["users", "products", "reviews", "all"])]
        name: String,
        /// Remove the lock a killed rebuild left behind, then rebuild.
        #[arg(long)]
        break_lock: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum StatusFormat {
    Table,
    Json,
}

#[derive(Subcommand)]
enum DlqCommand {
    /// List parked messages, oldest first: sequence, time, consumer, original subject, reason.
    List {
        /// Only this consumer's (projector, notifier, notifier_views).
        #[arg(long)]
        consumer: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Send parked messages back to their original subject (after fixing the cause), and
    /// remove them from the DLQ. Consumers that handled them already skip them.
    ///
    /// Examples:
    ///   camctl dlq requeue --seq 12 --seq 13
    ///   camctl dlq requeue --all --consumer projector
    #[command(verbatim_doc_comment)]
    Requeue {
        /// The DLQ sequence of a message to requeue (repeat for several; see `dlq list`).
        #[arg(long = "seq", value_name = "SEQUENCE", required_unless_present = "all")]
        sequences: Vec<u64>,
        /// Every parked message (of --consumer, if given).
        #[arg(long, conflicts_with = "sequences")]
        all: bool,
        #[arg(long)]
        consumer: Option<String>,
    },
}

#[derive(Subcommand)]
enum RelayCommand {
    /// Show how far the relay has published and how far behind it is.
    Status,
}

#[derive(Subcommand)]
enum NotifierCommand {
    /// Changes not yet mailed, per admin, and how long the oldest has waited.
    Status,
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

/// What a finished command reports, beyond success.
enum Done {
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

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(done) => done.into(),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

impl Cli {
    async fn pool(&self) -> anyhow::Result<PgPool> {
        PgPool::connect(&self.database_url)
            .await
            .context("connecting to PostgreSQL (DATABASE_URL)")
    }

    async fn mongo(&self) -> anyhow::Result<mongodb::Database> {
        let config = shared::config::MongoConfig {
            url: self.mongodb_url.clone(),
            db: self.mongodb_db.clone(),
        };
        let db = shared::mongo::connect(&config, "camctl").await?;
        shared::mongo::ping(&db)
            .await
            .map_err(|e| anyhow::anyhow!("connecting to MongoDB (MONGODB_URL): {e}"))?;
        Ok(db)
    }

    async fn jetstream(&self) -> anyhow::Result<(async_nats::jetstream::Context, Prefix)> {
        let prefix =
            Prefix::parse(&self.nats_prefix).map_err(|e| anyhow::anyhow!("NATS_PREFIX {e}"))?;
        let client = shared::nats::options_for(&self.nats_url)?
            .name("camctl")
            .connection_timeout(std::time::Duration::from_secs(5))
            .connect(&self.nats_url)
            .await
            .with_context(|| {
                format!(
                    "connecting to NATS at {} (NATS_URL)",
                    shared::config::shown(&self.nats_url)
                )
            })?;
        Ok((async_nats::jetstream::new(client), prefix))
    }

    fn progress(&self) -> Progress {
        Progress::new(match self.progress {
            When::Always => true,
            When::Never => false,
            When::Auto => std::io::stderr().is_terminal(),
        })
    }
}

async fn run(cli: Cli) -> anyhow::Result<Done> {
    match &cli.command {
        Command::Events(EventsCommand::Replay(args)) => {
            replay(&cli.pool().await?, args, &mut cli.progress()).await
        }
        Command::Events(EventsCommand::Tail(args)) => {
            let (js, prefix) = cli.jetstream().await?;
            tail(&js, &prefix, args).await
        }
        Command::Projections(ProjectionsCommand::Status { format }) => {
            let pool = cli.pool().await?;
            let db = cli.mongo().await?;
            let nats = cli.jetstream().await.map_err(|e| format!("{e:#}"));
            let report = status::gather(&pool, &db, nats.as_ref().map_err(Clone::clone)).await?;
            match format {
                StatusFormat::Json => writeln!(
                    std::io::stdout(),
                    "{}",
                    serde_json::to_string_pretty(&report)?
                )?,
                StatusFormat::Table => status::print(&report, &mut std::io::stdout().lock())?,
            }
            Ok(Done::Ok)
        }
        Command::Projections(ProjectionsCommand::Rebuild { name, break_lock }) => {
            let models = rebuild::select(name).context("unknown read model")?;
            let pool = cli.pool().await?;
            let db = cli.mongo().await?;
            let mut progress = cli.progress();
            let outcome = async {
                if *break_lock && rebuild::break_lock(&db).await? {
                    eprintln!("removed the lock of an earlier rebuild");
                }
                rebuild::rebuild(&pool, &db, &models, &mut progress).await
            };
            match outcome.await {
                Ok(report) => Ok(rebuilt(name, &report)?),
                Err(e) => match e.downcast::<rebuild::Busy>() {
                    Ok(busy) => {
                        eprintln!("error: {busy}");
                        Ok(Done::Busy)
                    }
                    Err(e) => Err(e),
                },
            }
        }
        Command::Dlq(DlqCommand::List { consumer, format }) => {
            let (js, prefix) = cli.jetstream().await?;
            let letters = dlq::list(&js, &prefix, consumer.as_deref()).await?;
            print_letters(&letters, *format)?;
            Ok(Done::Ok)
        }
        Command::Dlq(DlqCommand::Requeue {
            sequences,
            all,
            consumer,
        }) => {
            let (js, prefix) = cli.jetstream().await?;
            requeue(&js, &prefix, sequences, *all, consumer.as_deref()).await
        }
        Command::Relay(RelayCommand::Status) => {
            relay_status(&cli.pool().await?).await?;
            Ok(Done::Ok)
        }
        Command::Notifier(NotifierCommand::Status) => {
            let (js, prefix) = cli.jetstream().await?;
            mail::status(&cli.mongo().await?, &js, &prefix).await?;
            Ok(Done::Ok)
        }
        Command::Users(UsersCommand::CreateSuperuser { username, email }) => {
            create_superuser(&cli.database_url, username, email).await
        }
    }
}

fn rebuilt(name: &str, report: &rebuild::Report) -> anyhow::Result<Done> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "rebuilt {name}: {} events replayed in {:.1} s, switched in at position {}, {} applied after the switch",
        progress::grouped(report.events),
        report.elapsed.as_secs_f64(),
        report.switched_at,
        report.settled,
    )?;
    if report.failed.is_empty() {
        return Ok(Done::Ok);
    }
    writeln!(
        out,
        "{} events could not be applied (the live projector parks the same ones in DLQ):",
        report.failed.len()
    )?;
    for (position, reason) in &report.failed {
        writeln!(out, "  position {position}: {reason}")?;
    }
    Ok(Done::Partly)
}

async fn replay(pool: &PgPool, args: &ReplayArgs, progress: &mut Progress) -> anyhow::Result<Done> {
    let filter = EventFilter {
        event_types: args.types.clone(),
        aggregate_type: args.aggregate_type.clone(),
        aggregate_id: args.aggregate_id,
        since: args.since,
        until: args.until,
        // Only settled positions: nothing can still appear below them, so a later replay
        // `--from-position` the next one misses nothing.
        through: Some(settled_horizon(pool).await?),
    };
    let mut out = BufWriter::new(std::io::stdout().lock());
    if matches!(args.format, Format::Table) {
        write_table_header(&mut out)?;
    }
    let mut after = (args.from_position - 1).max(0);
    let total = store::count_all(pool, after, &filter)
        .await
        .context("counting events")?;
    progress.start("replaying", "events", total.unsigned_abs());
    loop {
        let page = store::read_all(pool, after, 1000, &filter)
            .await
            .context("reading events")?;
        let Some(last) = page.last() else { break };
        after = last.position;
        progress.advance(page.len() as u64);
        for event in page {
            write_event(&mut out, &event.upcast(), args.format)?;
        }
    }
    out.flush()?;
    progress.finish();
    Ok(Done::Ok)
}

async fn settled_horizon(pool: &PgPool) -> anyhow::Result<i64> {
    use command_api::relay::high_water::{Scope, safe_horizon};
    let scope = Scope::detect(pool).await?;
    loop {
        if let Some(horizon) =
            safe_horizon(pool, scope, 0, std::time::Duration::from_secs(1)).await?
        {
            return Ok(horizon);
        }
        eprintln!("waiting for transactions in flight to finish...");
    }
}

async fn tail(
    js: &async_nats::jetstream::Context,
    prefix: &Prefix,
    args: &TailArgs,
) -> anyhow::Result<Done> {
    use async_nats::jetstream::consumer::{DeliverPolicy, pull::OrderedConfig};
    use futures::StreamExt as _;

    let base = args
        .filter
        .strip_prefix(&format!("{}.", prefix.as_str()))
        .filter(|_| !prefix.is_empty())
        .unwrap_or(&args.filter);
    if !(base == "events.>" || base.starts_with("events.")) {
        eprintln!(
            "error: --filter must be a subject within events.> (got {:?})",
            args.filter
        );
        return Ok(Done::Usage);
    }
    let stream = js
        .get_stream(prefix.events_stream())
        .await
        .with_context(|| format!("finding the {} stream", prefix.events_stream()))?;
    let deliver_policy = match args.since {
        Some(since) => DeliverPolicy::ByStartTime {
            start_time: time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(
                since.timestamp_nanos_opt().unwrap_or(0),
            ))?,
        },
        None => DeliverPolicy::New,
    };
    let consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject: prefix.subject(base),
            deliver_policy,
            ..Default::default()
        })
        .await
        .context("creating the tail's consumer")?;
    let mut messages = consumer.messages().await?;
    let mut out = std::io::stdout().lock();
    if matches!(args.format, Format::Table) {
        write_table_header(&mut out)?;
        out.flush()?;
    }
    let mut seen = 0;
    loop {
        if args.count.is_some_and(|n| seen >= n) {
            return Ok(Done::Ok);
        }
        let message = tokio::select! {
            message = messages.next() => message,
            _ = tokio::signal::ctrl_c() => return Ok(Done::Ok),
        };
        let Some(message) = message else {
            anyhow::bail!("the subscription ended");
        };
        let message = message.map_err(|e| anyhow::anyhow!("reading events: {e}"))?;
        // A copy `dlq requeue` sent back for one consumer is not a new event.
        if shared::nats::headers::requeued_for_another(message.headers.as_ref(), None) {
            continue;
        }
        match serde_json::from_slice::<EventEnvelope>(&message.payload) {
            Ok(event) => write_event(&mut out, &event, args.format)?,
            Err(e) => eprintln!(
                "skipping a message on {} that is not an event: {e}",
                message.subject
            ),
        }
        out.flush()?;
        seen += 1;
    }
}

fn write_table_header(out: &mut impl Write) -> anyhow::Result<()> {
    writeln!(
        out,
        "{:>10}  {:<27}  {:<22}  {:<45}  {:>7}",
        "POSITION", "OCCURRED AT", "TYPE", "AGGREGATE", "VERSION"
    )?;
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

fn print_letters(letters: &[dlq::Letter], format: Format) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match format {
        Format::Ndjson => {
            for letter in letters {
                serde_json::to_writer(&mut out, letter)?;
                writeln!(out)?;
            }
        }
        Format::Table => {
            writeln!(
                out,
                "{:>8}  {:<20}  {:<15}  {:<22}  {:>9}  REASON / ORIGINAL SUBJECT",
                "SEQUENCE", "PARKED AT", "CONSUMER", "EVENT TYPE", "POSITION"
            )?;
            for l in letters {
                writeln!(
                    out,
                    "{:>8}  {:<20}  {:<15}  {:<22}  {:>9}  {}{}\n{:>82}{}",
                    l.sequence,
                    l.parked_at.get(..19).unwrap_or(&l.parked_at),
                    l.consumer,
                    l.event_type.as_deref().unwrap_or("-"),
                    l.event_position.map_or("-".into(), |p| p.to_string()),
                    l.error,
                    l.recipient
                        .as_deref()
                        .map(|r| format!(" (recipient {r})"))
                        .unwrap_or_default(),
                    "",
                    l.original_subject,
                )?;
            }
            writeln!(out, "{} parked", letters.len())?;
        }
    }
    Ok(())
}

async fn requeue(
    js: &async_nats::jetstream::Context,
    prefix: &Prefix,
    sequences: &[u64],
    all: bool,
    consumer: Option<&str>,
) -> anyhow::Result<Done> {
    let letters = dlq::list(js, prefix, consumer).await?;
    let chosen: Vec<&dlq::Letter> = letters
        .iter()
        .filter(|l| all || sequences.contains(&l.sequence))
        .collect();
    let missing: Vec<u64> = sequences
        .iter()
        .copied()
        .filter(|s| !chosen.iter().any(|l| l.sequence == *s))
        .collect();
    for sequence in &missing {
        eprintln!("no parked message {sequence}");
    }
    if chosen.is_empty() {
        eprintln!("nothing to requeue");
        return Ok(Done::NothingToDo);
    }
    let mut failed = 0;
    let mut out = std::io::stdout().lock();
    for letter in chosen {
        match dlq::requeue(js, prefix, letter).await {
            Ok(()) => writeln!(
                out,
                "requeued {} to {}",
                letter.sequence, letter.original_subject
            )?,
            Err(e) => {
                failed += 1;
                eprintln!("could not requeue {}: {e:#}", letter.sequence);
            }
        }
    }
    Ok(if failed > 0 || !missing.is_empty() {
        Done::Partly
    } else {
        Done::Ok
    })
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

async fn create_superuser(database_url: &str, username: &str, email: &str) -> anyhow::Result<Done> {
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
    let hasher =
        command_api::identity::password::Hasher::new(1, std::time::Duration::from_secs(60));
    if superuser::ensure(&pool, &hasher, &seed).await? {
        writeln!(
            std::io::stdout(),
            "created superuser {}",
            seed.username.as_str()
        )?;
        Ok(Done::Ok)
    } else {
        eprintln!("a superuser exists already; nothing done");
        Ok(Done::NothingToDo)
    }
}
