//! `camctl users create-superuser`: the first admin, written straight to the event store
//! (the same events command-api would append), so it works before any service runs.

use std::io::{IsTerminal as _, Write as _};

use command_api::{
    domain::values::{Email, Password, Username},
    identity::superuser::{self, SuperuserSeed},
};

use crate::{cli::Cli, cmd::Done};

pub async fn run(cli: &Cli, username: &str, email: &str) -> anyhow::Result<Done> {
    let username = Username::parse(username).map_err(|e| anyhow::anyhow!("--username {e}"))?;
    let email = Email::parse(email).map_err(|e| anyhow::anyhow!("--email {e}"))?;
    let password =
        Password::parse(&read_password()?).map_err(|e| anyhow::anyhow!("the password {e}"))?;
    let pool = eventstore::connect(&cli.database_url, 2).await?;
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

/// Asked twice without echo on a terminal; otherwise the first line of standard input, so
/// scripts can pipe it in.
fn read_password() -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        let second = rpassword::prompt_password("Repeat password: ")?;
        anyhow::ensure!(first == second, "the passwords differ");
        Ok(first)
    } else {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    }
}
