//! The `hpa-sim` command line: `replay`, `simulate` and `tune`.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "hpa-sim",
    version,
    about = "A faithful HPA controller and LLM-server simulator"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller alone over a CASE file's metric values; one JSON object per sync.
    Replay {
        /// The CASE file (YAML).
        case: PathBuf,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hpa-sim: error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Replay { case } => {
            let c = hpa_sim::replay::load(&case)?;
            let out = hpa_sim::replay::run(&c).with_context(|| format!("{}", case.display()))?;
            let mut stdout = std::io::stdout().lock();
            for (t, o) in out {
                writeln!(stdout, "{}", hpa_sim::replay::json_line(t, &o))?;
            }
            Ok(())
        }
    }
}

/// `hpa-sim … | head` closes stdout early: that is not an error.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
