//! `retentiond generate` (hidden): the man pages and the shell completion
//! scripts, made from the command-line definition in [`crate::cli`] so that
//! they cannot drift from it. `debian/build-package` ships their output in
//! the Debian package.

use std::io::Write;

use clap::CommandFactory;

use crate::cli::{Cli, GenerateCommand};
use crate::error::Error;

pub fn write(command: GenerateCommand) -> Result<(), Error> {
    match command {
        GenerateCommand::Man { dir } => {
            let context = |error: std::io::Error| {
                std::io::Error::new(error.kind(), format!("cannot write the man pages into {}: {error}", dir.display()))
            };
            std::fs::create_dir_all(&dir).map_err(context)?;
            clap_mangen::generate_to(Cli::command(), &dir).map_err(context)?;
        }
        GenerateCommand::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "retentiond", &mut script);
            std::io::stdout().write_all(&script)?;
        }
    }
    Ok(())
}
