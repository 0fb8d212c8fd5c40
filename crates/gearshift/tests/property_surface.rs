//! The whole public surface under extreme values (issue 20, "harden the
//! whole surface"): random sequences of builder calls, an output and handle
//! calls carrying 0, 1, MAX, NaN, infinities, subnormals and durations of
//! years. Every case must end in success or a typed error, never a panic or
//! a hang, with every item taken from the source accounted for.
//!
//! `PROPTEST_CASES` sets the cases (256 by default), `PROPTEST_RNG_SEED` the
//! seed (random by default, printed on failure). Every case runs: failures
//! are grouped by cause, each cause shrunk within `SURFACE_SHRINK_SECS` (30
//! by default), so one run lists every distinct failure. The run stops
//! early if a case leaves threads behind (later cases would run beside
//! them) or after `SURFACE_BUDGET_SECS` (120 by default; a run where every
//! case passes takes about 10 s). `SURFACE_VERBOSE=1` prints every case and
//! its result; `SURFACE_CASE=i` runs only case `i` of the seed.

mod surface;

use std::time::{Duration, Instant};

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config as ProptestConfig, RngSeed, TestRunner};
use surface::Case;
use surface::guard::{Fail, record_panics};
use surface::watch::watch;

/// Cases per run by default: about 10 s in debug on 2 cores once every
/// case passes.
const CASES: u32 = 256;

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn the_public_surface_never_panics_hangs_or_loses_an_item() {
    record_panics();
    let cases: u32 = env("PROPTEST_CASES").unwrap_or(CASES);
    let seed: u64 = env("PROPTEST_RNG_SEED").unwrap_or_else(rand::random);
    let shrink_until =
        Instant::now() + Duration::from_secs(env("SURFACE_SHRINK_SECS").unwrap_or(30));
    let mut runner = TestRunner::new(ProptestConfig {
        rng_seed: RngSeed::Fixed(seed),
        ..ProptestConfig::default()
    });
    let strategy = surface::case();
    // (cause, cases that hit it, the smallest case found, its failure)
    let mut causes: Vec<(String, u32, Case, Fail)> = Vec::new();
    let verbose = std::env::var_os("SURFACE_VERBOSE").is_some();
    let mut passed = [0u32; 2];
    let only: Option<u32> = env("SURFACE_CASE");
    let mut stopped = None;
    let budget = Duration::from_secs(env("SURFACE_BUDGET_SECS").unwrap_or(120));
    let began = Instant::now();
    for i in 0..cases {
        if began.elapsed() > budget {
            // Only failing runs get here: hangs take seconds each.
            stopped = Some((i, "the time budget ran out"));
            break;
        }
        let mut tree = strategy.new_tree(&mut runner).unwrap();
        if only.is_some_and(|only| only != i) {
            passed[0] += 1;
            continue;
        }
        let started = Instant::now();
        let result = watch(&tree.current());
        if verbose {
            let took = started.elapsed();
            eprintln!(
                "case {i} ({took:.1?}): {:?}\n  => {result:?}",
                tree.current()
            );
        }
        let f = match result {
            Ok(pass) => {
                passed[pass as usize] += 1;
                continue;
            }
            Err(f) => f,
        };
        let known = causes.iter_mut().find(|c| c.0 == f.what);
        let stops = f.stops;
        match known {
            Some(c) => c.1 += 1,
            // A hang takes seconds per run: it is not shrunk.
            None if stops || f.what.contains("hung") || f.what.contains("blocked") => {
                causes.push((f.what.clone(), 1, tree.current(), f))
            }
            None => {
                let (case, f) = shrink(&mut tree, f, shrink_until);
                causes.push((f.what.clone(), 1, case, f));
            }
        }
        if stops || causes.last().is_some_and(|c| c.3.stops) {
            stopped = Some((i + 1, "a case left threads running"));
            break;
        }
    }
    let ran = stopped.map_or(cases, |(n, _)| n);
    println!(
        "{ran} cases (seed {seed}): {} ran, {} refused with a typed error, {} failed",
        passed[0],
        passed[1],
        ran - passed[0] - passed[1]
    );
    if !causes.is_empty() {
        let list: Vec<String> = causes
            .iter()
            .map(|(what, n, case, f)| {
                format!(
                    "- {what} ({n} cases): {}\n  smallest case: {case:?}",
                    f.detail
                )
            })
            .collect();
        let stop = match stopped {
            Some((n, why)) => format!("stopped after {n} cases: {why}; "),
            None => String::new(),
        };
        panic!(
            "{} causes of failure in {ran} cases ({stop}seed {seed}: rerun with PROPTEST_RNG_SEED={seed}):\n{}",
            causes.len(),
            list.join("\n")
        );
    }
}

/// Proptest's shrinking, within a time budget: simpler cases that fail for
/// the same cause replace the case.
fn shrink(tree: &mut impl ValueTree<Value = Case>, first: Fail, until: Instant) -> (Case, Fail) {
    let (mut case, mut f) = (tree.current(), first);
    let mut failing = true;
    while Instant::now() < until {
        let moved = if failing {
            tree.simplify()
        } else {
            tree.complicate()
        };
        if !moved {
            break;
        }
        match watch(&tree.current()) {
            Err(g) if g.stops => {
                // Later runs would run beside its threads: keep what we have.
                f.stops = true;
                break;
            }
            Err(g) if g.what == f.what => (case, f, failing) = (tree.current(), g, true),
            _ => failing = false,
        }
    }
    (case, f)
}
