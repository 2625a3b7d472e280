//! The command line: every command, option and value camctl takes, as clap types. What each
//! command does is in `cmd/`, one file per command.

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};
use uuid::Uuid;

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
pub struct Cli {
    /// The event store (PostgreSQL).
    #[arg(long, env = "DATABASE_URL", default_value = shared::config::DEFAULT_DATABASE_URL, global = true)]
    pub database_url: String,
    /// The read-model store (MongoDB).
    #[arg(long, env = "MONGODB_URL", default_value = shared::config::DEFAULT_MONGODB_URL, global = true)]
    pub mongodb_url: String,
    /// The read-model database.
    #[arg(long, env = "MONGODB_DB", default_value = "camreviews", global = true)]
    pub mongodb_db: String,
    /// The NATS server.
    #[arg(long, env = "NATS_URL", default_value = shared::config::DEFAULT_NATS_URL, global = true)]
    pub nats_url: String,
    /// Prefix of stream names and subjects (as the services' NATS_PREFIX).
    #[arg(long, env = "NATS_PREFIX", default_value = "", global = true)]
    pub nats_prefix: String,
    /// Progress bars on standard error: auto = when it is a terminal.
    #[arg(long, value_enum, default_value_t = When::Auto, global = true)]
    pub progress: When,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum When {
    Auto,
    Always,
    Never,
}

#[derive(Subcommand)]
pub enum Command {
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
pub enum EventsCommand {
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
pub struct ReplayArgs {
    /// Start at this global position (inclusive; 0 or 1 = from the beginning).
    #[arg(long, default_value_t = 0, conflicts_with = "since")]
    pub from_position: i64,
    /// Only events that occurred at or after this time (RFC 3339).
    #[arg(long)]
    pub since: Option<DateTime<Utc>>,
    /// Only events that occurred before this time (RFC 3339).
    #[arg(long)]
    pub until: Option<DateTime<Utc>>,
    /// Only events of this type, e.g. ProductCreated (repeat for several).
    #[arg(long = "type", value_name = "EVENT_TYPE")]
    pub types: Vec<String>,
    /// Only events of this aggregate type: product, review or user.
    #[arg(long)]
    pub aggregate_type: Option<String>,
    /// Only the events of this one aggregate (a SKU, review id or user id).
    #[arg(long)]
    pub aggregate_id: Option<Uuid>,
    /// ndjson: one envelope per line; table: a readable summary.
    #[arg(long, value_enum, default_value_t = Format::Ndjson)]
    pub format: Format,
}

#[derive(Args)]
pub struct TailArgs {
    /// A NATS subject filter within the events, e.g. 'events.product.>' or
    /// 'events.*.*.ProductDeleted' (NATS_PREFIX is added for you).
    #[arg(long, default_value = "events.>")]
    pub filter: String,
    /// Start with the events published since this time (RFC 3339) instead of only new ones.
    #[arg(long)]
    pub since: Option<DateTime<Utc>>,
    /// Stop after this many events.
    #[arg(long)]
    pub count: Option<u64>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Ndjson,
    Table,
}

#[derive(Subcommand)]
pub enum ProjectionsCommand {
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
    /// switched in with one atomic update of the collection catalog: readers see the old
    /// complete model or the new one, never a half-built one. Events no projection can apply
    /// are listed (exit code 4).
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
pub enum StatusFormat {
    Table,
    Json,
}

#[derive(Subcommand)]
pub enum DlqCommand {
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
pub enum RelayCommand {
    /// Show how far the relay has published and how far behind it is.
    Status,
}

#[derive(Subcommand)]
pub enum NotifierCommand {
    /// Changes not yet mailed, per admin, and how long the oldest has waited.
    Status,
}

#[derive(Subcommand)]
pub enum UsersCommand {
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
