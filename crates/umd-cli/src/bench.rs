//! `umd bench`.

use clap::Args;

/// Options of `umd bench`.
#[derive(Args)]
pub struct BenchArgs {
    /// Fewer repetitions (a quick look, noisier).
    #[arg(long)]
    pub quick: bool,
    /// Print JSON on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(_args: &BenchArgs) -> u8 {
    eprintln!("umd bench: not built yet");
    2
}
