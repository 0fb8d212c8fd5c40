//! `gearshift-bench`: see `gearshift_bench::cli`.

use clap::Parser;
use gearshift_bench::cli::{Cli, execute};
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| {
            EnvFilter::new("info,gearshift::pipeline=warn,gearshift::control=warn")
        }))
        .with_writer(std::io::stderr)
        // A closed stderr (`gearshift-bench run 2>&1 | head`) must not turn
        // every later event into a panic (the default reports a failed
        // write with `eprintln!`, which panics on a closed stderr) inside
        // the pipeline's tasks, which then stop without their items.
        .log_internal_errors(false)
        .init();
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(num_cpus::get().max(1))
        .enable_all()
        .build()?;
    let out = rt.block_on(execute(cli))?;
    print!("{out}");
    Ok(())
}
