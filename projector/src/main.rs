use std::process::ExitCode;

use camreviews_projector::{Application, Config};
use shared::{config::ProcessEnv, service};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let config = service::config_or_exit(Config::from_env(&ProcessEnv));
    shared::telemetry::init(&config.telemetry);
    let shutdown = service::shutdown_on_signal();
    service::exit_code(
        async {
            Application::build(config)
                .await?
                .run_until_stopped(shutdown)
                .await
        }
        .await,
    )
}
