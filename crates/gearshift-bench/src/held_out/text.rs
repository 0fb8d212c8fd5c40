//! The held-out report as text, JSON and SVG, and the targets.

use std::path::Path;

use gearshift::tuner::default_for;

use super::{HeldOutReport, RUNAWAY_S, Target, TunerReport};
use crate::report;
use crate::sim::{Scenario, SimConfig, Step, Trajectory, oracle, simulate_with};

/// The targets for the default controller.
const MEDIAN_GOAL: f64 = 0.93;
const P5_GOAL: f64 = 0.80;
const SETTLING_GOAL_S: f64 = 2.0;

/// The default controller's run on `seed`, and the oracle's reference
/// lines, as an SVG: calls in flight per API over time (log scale) with
/// the oracle's per phase, and the goodput with the oracle's.
///
/// # Errors
///
/// If the file cannot be drawn or written.
pub fn plot_default_run(path: &Path, seed: u64) -> anyhow::Result<()> {
    let s = Scenario::generate(seed);
    let o = oracle(&s);
    let run: Trajectory = simulate_with(&s, &default_for, &SimConfig::for_scenario(&s));
    let starts = s.phase_starts();
    let steps = |v: &dyn Fn(&Step) -> f64| -> Vec<(f64, f64)> {
        run.steps
            .iter()
            .flat_map(|st| [(st.t, v(st)), (st.t + st.secs, v(st))])
            .collect()
    };
    let per_phase = |v: &dyn Fn(usize) -> f64| -> Vec<(f64, f64)> {
        (0..s.phases.len())
            .flat_map(|ph| [(starts[ph], v(ph)), (starts[ph] + s.phases[ph].secs, v(ph))])
            .collect()
    };
    let mut limits = Vec::new();
    for i in 0..s.apis() {
        limits.push((
            format!("API {} limit", i + 1),
            steps(&|st| st.limits[i] as f64),
        ));
        limits.push((
            format!("API {} oracle", i + 1),
            per_phase(&|ph| o.limits[ph][i] as f64),
        ));
    }
    let goodput = vec![
        (
            "goodput".to_string(),
            steps(&|st| st.expected / st.secs.max(1e-9)),
        ),
        ("oracle goodput".to_string(), per_phase(&|ph| o.goodput[ph])),
    ];
    report::plot_two_panels(
        path,
        &format!(
            "default controller, seed {seed} ({:?}): calls in flight and goodput",
            s.family
        ),
        ("calls in flight", &limits),
        ("items/s", &goodput),
    )
}

/// The report as text: per tuner, then the targets as PASS/FAIL lines.
pub fn render(r: &HeldOutReport) -> String {
    let mut out = format!(
        "{} scenarios from seed {} ({}), {:.1}s\n",
        r.scenarios, r.first_seed, r.range, r.elapsed_s
    );
    for t in &r.tuners {
        out += &format!(
            "{:20} mean {:.3} median {:.3} p5 {:.3} min {:.3} | settling median {} | \
             runaway>2s in {} runs | calls in Retry-After {:.0}\n",
            t.name,
            t.mean,
            t.median,
            t.p5,
            t.min,
            t.median_settling_s
                .map_or("never".to_string(), |x| format!("{x:.1}s")),
            t.runaways,
            t.calls_in_retry_after,
        );
        let fams: Vec<String> = t
            .families
            .iter()
            .map(|f| format!("{} {:.3}", f.family, f.median))
            .collect();
        out += &format!("  median per family: {}\n", fams.join(", "));
        for w in &t.worst {
            out += &format!(
                "  worst: seed {} {} fraction {:.3}: {}\n",
                w.seed, w.family, w.fraction, w.why
            );
        }
    }
    for t in &r.targets {
        out += &format!(
            "{} {}: {}\n",
            if t.pass { "PASS" } else { "FAIL" },
            t.name,
            t.measured
        );
    }
    out
}

/// Writes the report as pretty JSON.
///
/// # Errors
///
/// If it cannot be serialised or written.
pub fn write_json(path: &Path, r: &HeldOutReport) -> anyhow::Result<()> {
    std::fs::write(path, serde_json::to_string_pretty(r)?)
        .map_err(|e| anyhow::anyhow!("could not write {}: {e}", path.display()))
}

/// The targets on the default controller (`tuners[0]`), against
/// every other tuner.
pub(super) fn targets(tuners: &[TunerReport]) -> Vec<Target> {
    let Some(d) = tuners.first() else {
        return Vec::new();
    };
    let settling = d.median_settling_s.unwrap_or(f64::INFINITY);
    let mut out = vec![
        Target {
            name: format!("median >= {MEDIAN_GOAL}"),
            measured: format!("{:.3}", d.median),
            pass: d.median >= MEDIAN_GOAL,
        },
        Target {
            name: format!("p5 >= {P5_GOAL}"),
            measured: format!("{:.3}", d.p5),
            pass: d.p5 >= P5_GOAL,
        },
        Target {
            name: format!("no runaway (limit > 2x the oracle's for > {RUNAWAY_S} s)"),
            measured: format!("{} runs", d.runaways),
            pass: d.runaways == 0,
        },
        Target {
            name: "zero calls inside Retry-After".to_string(),
            measured: format!("{:.0}", d.calls_in_retry_after),
            pass: d.calls_in_retry_after == 0.0,
        },
        Target {
            name: format!("median settling < {SETTLING_GOAL_S} s"),
            measured: d
                .median_settling_s
                .map_or("never".to_string(), |x| format!("{x:.1} s")),
            pass: settling < SETTLING_GOAL_S,
        },
    ];
    for other in &tuners[1..] {
        out.push(Target {
            name: format!("beats {} on mean and median", other.name),
            measured: format!(
                "mean {:.3} vs {:.3}, median {:.3} vs {:.3}",
                d.mean, other.mean, d.median, other.median
            ),
            pass: d.mean > other.mean && d.median > other.median,
        });
    }
    out
}
