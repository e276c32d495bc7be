//! `gossipnet completions SHELL` and `gossipnet man`: shell completions and
//! a man page, both generated from the command-line definitions, so they
//! never fall behind the program. Each is printed to standard output, to
//! be saved where the shell or `man` looks (README: "Shell completions and
//! the man page").

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, CommandFactory, ValueEnum};

/// The shells completions are made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    /// GNU bash.
    Bash,
    /// Z shell.
    Zsh,
    /// fish.
    Fish,
}

/// `gossipnet completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    shell: Shell,
}

/// Prints the completion script for `args.shell` of the command `C`.
pub fn completions<C: CommandFactory>(args: CompletionsArgs) -> Result<()> {
    let mut command = C::command();
    let name = command.get_name().to_string();
    let mut out = Vec::new();
    match args.shell {
        Shell::Bash => {
            clap_complete::generate(clap_complete::Shell::Bash, &mut command, name, &mut out)
        }
        Shell::Zsh => {
            clap_complete::generate(clap_complete::Shell::Zsh, &mut command, name, &mut out)
        }
        Shell::Fish => {
            clap_complete::generate(clap_complete::Shell::Fish, &mut command, name, &mut out)
        }
    }
    write_out(&out)
}

/// `gossipnet man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write gossipnet.1 and a page per subcommand (gossipnet-node.1, ...)
    /// into this directory instead of printing gossipnet.1.
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
}

/// Prints the man page of the command `C` in roff, or writes it and one
/// page per subcommand into a directory.
pub fn man<C: CommandFactory>(args: ManArgs) -> Result<()> {
    let command = C::command();
    match args.out_dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(command, &dir)
                .with_context(|| format!("cannot write the man pages into {}", dir.display()))?;
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "man pages written to {}", dir.display());
            Ok(())
        }
        None => {
            let mut out = Vec::new();
            clap_mangen::Man::new(command)
                .render(&mut out)
                .context("cannot render the man page")?;
            write_out(&out)
        }
    }
}

/// Writes `bytes` to standard output; a closed pipe (`| head`) is no error.
fn write_out(bytes: &[u8]) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("cannot write to standard output")
        }
        _ => Ok(()),
    }
}
