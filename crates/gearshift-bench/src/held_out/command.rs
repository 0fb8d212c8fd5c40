//! `gearshift-bench tuner --held-out`: the command around [`run`](super::run).

use std::io::IsTerminal;
use std::ops::Range;

use crate::cli::TunerArgs;
use crate::sim::{HELD_OUT_START, Scenario, TRAINING, end_to_end, quantile};

/// Runs `gearshift-bench tuner --held-out` and returns the report's text.
///
/// # Errors
///
/// Bad flags, a file that cannot be written, an end-to-end run that fails.
pub async fn command(args: TunerArgs) -> anyhow::Result<String> {
    use crate::held_out;

    if !args.phases.is_empty() || !args.systems.is_empty() {
        anyhow::bail!("--phase and --system apply to the phase benchmark, not to --held-out");
    }
    let n = args.seeds.unwrap_or(300);
    let most = if args.training {
        TRAINING.end - TRAINING.start
    } else {
        1_000_000
    };
    if n == 0 || n > most {
        anyhow::bail!("seeds must be between 1 and {most}, got {n}");
    }
    let start = if args.training {
        TRAINING.start
    } else {
        HELD_OUT_START
    };
    let opts_seeds = start..start + n;
    let opts = held_out::HeldOutOptions {
        seeds: opts_seeds.clone(),
        training: args.training,
        progress: std::io::stderr().is_terminal(),
    };
    let report = tokio::task::spawn_blocking(move || held_out::run(&opts)).await?;
    if let Some(path) = &args.json {
        held_out::write_json(path, &report)?;
    }
    if let Some(path) = &args.svg {
        let worst = report.tuners.first().and_then(|t| t.worst.first());
        if let Some(w) = worst {
            held_out::plot_default_run(path, w.seed)?;
            tracing::info!(path = %path.display(), seed = w.seed, "wrote plot");
        }
    }
    let mut out = held_out::render(&report);
    if let Some(k) = args.end_to_end {
        out += &end_to_end_sample(opts_seeds, k).await?;
    }
    Ok(out)
}

/// Runs the first `k` single-API scenarios of `seeds` end to end with the
/// default controller, and a line per scenario.
async fn end_to_end_sample(seeds: Range<u64>, k: u64) -> anyhow::Result<String> {
    // Phases of 10 s: long enough for a controller to settle, short
    // enough for a sample to fit in minutes.
    let opts = end_to_end::EndToEndOptions {
        phase: std::time::Duration::from_secs(10),
        ..end_to_end::EndToEndOptions::default()
    };
    let mut out = format!(
        "\nend to end against the mock API (phases cut to {:?}):\n",
        opts.phase
    );
    let mut fractions = Vec::new();
    for seed in seeds
        .filter(|&s| Scenario::generate(s).second.is_none())
        .take(k as usize)
    {
        let r = end_to_end::run(seed, &gearshift::tuner::default_for, &opts).await?;
        let phases: Vec<String> = r.fractions.iter().map(|f| format!("{f:.2}")).collect();
        out += &format!(
            "  seed {seed} {:?}: {:.3} of the oracle's settings (phases {}), {} items, every one with one outcome: {}\n",
            r.family,
            r.fraction,
            phases.join(" "),
            r.tuned.taken,
            r.tuned.outcomes() == r.tuned.taken
        );
        fractions.push(r.fraction);
    }
    if !fractions.is_empty() {
        out += &format!(
            "  median {:.3}, min {:.3} over {} scenarios\n",
            quantile(&fractions, 0.5),
            quantile(&fractions, 0.0),
            fractions.len()
        );
    }
    Ok(out)
}
