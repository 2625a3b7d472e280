//! `camctl dlq requeue`: chosen parked messages back to their original subject. Sequences
//! that name no parked message are reported, and make the result "done in part".

use std::io::Write as _;

use super::Letter;
use crate::{cli::Cli, cmd::Done};

pub async fn run(
    cli: &Cli,
    sequences: &[u64],
    all: bool,
    consumer: Option<&str>,
) -> anyhow::Result<Done> {
    let (js, prefix) = cli.jetstream().await?;
    let letters = super::parked(&js, &prefix, consumer).await?;
    let chosen: Vec<&Letter> = letters
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
        match super::send_back(&js, &prefix, letter).await {
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
