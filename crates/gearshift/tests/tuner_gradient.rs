//! The default control law, one rule at a time, on hand-made windows: each
//! test fails if its rule is taken out.

use std::time::Duration;

use gearshift::tuner::{Decision, Gradient, GradientParams, Tuner, Window};

/// A window of `limit` calls in flight, all used, answering `ok` calls at
/// a median of `p50_ms` (p90 at 1.5x, so a quiet API) in 1 s.
fn window(limit: usize, ok: u64, p50_ms: f64) -> Window {
    let ms = |x: f64| Duration::from_secs_f64(x / 1e3);
    Window {
        elapsed: Duration::from_secs(1),
        cores: 2,
        agents: limit,
        api_permits: limit,
        workers: 2,
        max_workers: 2,
        io_completions: ok,
        latency_p50: Some(ms(p50_ms)),
        latency_p90: Some(ms(p50_ms * 1.5)),
        latency_min: Some(ms(p50_ms * 0.5)),
        latency_mean: Some(ms(p50_ms * 1.1)),
        mean_in_flight: limit as f64,
        peak_in_flight: limit,
        cpu_items: ok,
        queue_capacity: 64,
        workers_idle: 0.5,
        ..Window::default()
    }
}

/// A law capped at 40 calls after four healthy windows there.
fn healthy_at_40() -> Gradient {
    let mut law = Gradient::with_params(GradientParams {
        max_limit: 40,
        ..GradientParams::default()
    });
    for _ in 0..4 {
        let l = law.limit().max(40);
        law.decide(&window(l, 2000, 20.0));
    }
    law
}

#[test]
fn a_used_limit_at_no_load_latency_doubles_then_grows_by_its_square_root() {
    let mut law = Gradient::new();
    let d = law.decide(&window(4, 200, 20.0));
    assert_eq!(d.api_permits, Some(8), "{}", d.reason);
    assert_eq!(d.agents, Some(8), "agents follow the limit");
    let d = law.decide(&window(8, 400, 20.0));
    assert_eq!(d.api_permits, Some(16), "{}", d.reason);
    // The first signal ends the doubling: latency past tolerance cuts...
    let d = law.decide(&window(16, 400, 40.0));
    assert_eq!(d.api_permits, Some(12), "16 x 1.5 / 2: {}", d.reason);
    // ...and growth slows from then on: half the limit at no-load latency,
    // sqrt(limit) near the knee.
    let d = law.decide(&window(12, 600, 20.0));
    assert!(matches!(d.api_permits, Some(17 | 18)), "{}", d.reason);
    let l = law.limit();
    let d = law.decide(&window(l, 600, 24.0));
    let want = l + (l as f64).sqrt().round() as usize;
    assert!(
        d.api_permits.is_some_and(|n| n.abs_diff(want) <= 1),
        "{want}: {}",
        d.reason
    );
}

#[test]
fn latency_within_tolerance_holds() {
    let mut law = Gradient::new();
    law.decide(&window(8, 400, 20.0)); // no-load 20 ms; -> 16
    let d = law.decide(&window(16, 600, 27.0)); // 1.35x: above sqrt(1.5)
    assert_eq!(d.api_permits, None, "{}", d.reason);
    assert_eq!(law.limit(), 16);
}

#[test]
fn an_unused_limit_does_not_grow_and_shrinks_to_what_carries_the_flow() {
    let waiting = |limit: usize, idle: f64, blocked: f64| {
        let mut w = window(limit, 500, 20.0);
        w.agents_idle = idle;
        w.agents_blocked = blocked;
        w
    };
    // The window after a move saw the agents ramp: it says nothing of use.
    let mut law = Gradient::new();
    let d = law.decide(&waiting(40, 0.5, 0.25));
    assert_eq!(d.api_permits, None, "no cut, and no growth: {}", d.reason);
    // Then: a quarter of the limit carries the flow (Little's law), 25%
    // headroom.
    let d = law.decide(&waiting(40, 0.5, 0.25));
    assert_eq!(d.api_permits, Some(13), "{}", d.reason);
    law.decide(&waiting(13, 0.0, 0.0)); // the window after the move
    let d = law.decide(&waiting(13, 0.15, 0.0));
    assert_eq!(
        d.api_permits, None,
        "used below 90%: no growth: {}",
        d.reason
    );
    // With headroom 2, a limit cut to its use is half used: 85% is used
    // (more than halfway from 50% to all), and it grows.
    let mut law = Gradient::with_params(GradientParams {
        headroom: 2.0,
        ..GradientParams::default()
    });
    law.decide(&waiting(13, 0.0, 0.0));
    let d = law.decide(&waiting(13, 0.15, 0.0));
    assert!(d.api_permits > Some(13), "{}", d.reason);
}

#[test]
fn a_limit_cut_for_want_of_input_goes_on_doubling_once_used() {
    // A second stage starved while the first one ramps: its cut says
    // nothing of the knee, so the doubling goes on when the input comes.
    let mut law = Gradient::new();
    let mut starved = window(8, 100, 20.0);
    starved.agents_idle = 0.75;
    law.decide(&starved); // the first window: the agents ramp
    let d = law.decide(&starved);
    assert_eq!(
        d.api_permits,
        Some(3),
        "2 of 8 carry it, x1.25: {}",
        d.reason
    );
    // Below the knee the goodput follows the calls in flight.
    for _ in 0..3 {
        let l = law.limit();
        let d = law.decide(&window(l, 50 * l as u64, 20.0));
        let doubled = d.api_permits.is_some_and(|n| n.abs_diff(2 * l) <= 1);
        assert!(doubled, "{l}: {}", d.reason);
    }
}

#[test]
fn pushback_cuts_to_what_the_api_served_and_holds_there() {
    let mut law = Gradient::new();
    law.decide(&window(50, 2500, 20.0)); // -> 100
    // At 100 the API answers 429 and pauses the budget for half the
    // window: it served 1,000 calls in 0.5 s at 22 ms (mean) = 44 calls,
    // clearly fewer than the 70 not refused of a limit of 100 (the peak
    // in flight is not measured: agents without work).
    let mut w = window(100, 1000, 20.0);
    w.peak_in_flight = 0;
    w.throttled = 30;
    w.retry_after = Some(Duration::from_secs(1));
    w.paused = Duration::from_millis(500);
    let d = law.decide(&w);
    let cut = d.api_permits.expect("pushback cuts");
    assert_eq!(cut, 45, "never more than half in one window: {}", d.reason);
    // At 45, Little's law reads 44 and 40 calls were not refused: the
    // count stands, 0.9 x 40.
    let mut w = window(45, 2000, 20.0);
    w.throttled = 5;
    let d = law.decide(&w);
    assert_eq!(d.api_permits, Some(36), "{}", d.reason);
    // Growth stops at the ceiling for `ceiling_memory` (30 s).
    for _ in 0..20 {
        let l = law.limit();
        law.decide(&window(l, (l * 45) as u64, 20.0));
    }
    assert!(
        law.limit() <= 44,
        "grew past the level that brought pushback: {}",
        law.limit()
    );
}

#[test]
fn steady_failures_are_the_baseline_and_a_rise_above_it_cuts() {
    let mut law = Gradient::with_params(GradientParams {
        max_limit: 30,
        ..GradientParams::default()
    });
    // A steady 10% of errors from the first call: before any window the
    // baseline is 0, so the first window cuts; the cut does not lower the
    // share, so it is undone and 10% becomes the baseline.
    let mut w = window(30, 900, 20.0);
    w.errors = 100;
    let d = law.decide(&w);
    let cut = d.api_permits.expect("10% over a baseline of 0 cuts");
    let mut w = window(cut, 900, 20.0);
    w.errors = 100;
    let d = law.decide(&w);
    assert!(d.reason.contains("re-based"), "{}", d.reason);
    assert_eq!(law.limit(), 30);
    // From then on, 10% is not overload.
    for _ in 0..6 {
        let mut w = window(30, 900, 20.0);
        w.errors = 100;
        let d = law.decide(&w);
        assert!(!d.reason.contains("failures"), "{}", d.reason);
    }
    assert_eq!(law.limit(), 30);
    // Timeouts rise to half the calls: the API took 60% (40% above baseline).
    let mut w = window(30, 500, 20.0);
    w.errors = 50;
    w.timeouts = 450;
    let d = law.decide(&w);
    assert!(d.reason.contains("failures"), "{}", d.reason);
    assert_eq!(d.api_permits, Some(16), "0.9 x 30 x 0.6: {}", d.reason);
}

#[test]
fn a_share_too_small_for_one_window_is_pooled_over_the_windows_at_its_limit() {
    // Healthy at 40, then an API past its knee drops 1 call in 30: in 300
    // calls, 10 failed is within the noise of one window (3.3% against a
    // margin of 2% plus two standard errors of 1.1%).
    let mut law = healthy_at_40();
    let dropping = || {
        let mut w = window(40, 290, 20.0);
        w.timeouts = 10;
        w
    };
    let mut cut = None;
    for i in 0..8 {
        let d = law.decide(&dropping());
        if d.api_permits.is_some() {
            cut = Some((i, d));
            break;
        }
    }
    // Learnt window by window, the share would have become the baseline
    // by the fifth window, and nothing would ever cut.
    let (i, d) = cut.expect("the pooled share is overload");
    assert!(i < 4, "cut only after {} windows", i + 1);
    assert!(d.reason.contains("in the last"), "{}", d.reason);
    assert!(d.reason.contains("baseline of 0.0%"), "{}", d.reason);
}

#[test]
fn an_api_that_drops_from_the_first_call_is_cut_not_learnt_as_its_baseline() {
    // 16 calls at an API that serves 4 and drops the rest: from the first
    // window, three quarters of the calls time out, holding their slots.
    let mut law = Gradient::new();
    let mut limit = 16;
    for _ in 0..4 {
        // Above 4, the calls past 4 time out; at 4 or fewer, all succeed.
        let mut w = window(limit, 4, 5.0);
        if limit > 4 {
            w.timeouts = (limit - 4) as u64;
        } else {
            w.io_completions = 800;
        }
        let d = law.decide(&w);
        limit = d.api_permits.unwrap_or(limit);
    }
    // Learning 75% as the baseline would have held 16 (or grown on the
    // flat latency); the law cuts to what the API serves.
    assert!(limit <= 5, "still {limit} calls at an API that serves 4");
}

#[test]
fn a_cut_that_does_not_lower_latency_re_bases_the_no_load_value() {
    let mut law = Gradient::new();
    // No-load ~10 ms; a first doubling that doubles goodput (a later one
    // losing it is not read as a start above the knee, drain.rs): -> 64.
    law.decide(&window(16, 1600, 10.0));
    law.decide(&window(32, 3200, 10.0));
    // The API gets 3x slower, whatever the load: the law cuts...
    let d = law.decide(&window(64, 2133, 30.0));
    assert_eq!(d.api_permits, Some(32), "{}", d.reason);
    // ...latency stays at 30 ms at half the calls. That window began with
    // calls started at 64, so it does not judge the cut: the law cuts on...
    let d = law.decide(&window(32, 1066, 30.0));
    assert_eq!(d.api_permits, Some(16), "{}", d.reason);
    // ...and at a quarter, a window wholly at 32 or less: not our queue.
    let d = law.decide(&window(16, 533, 30.0));
    assert!(d.reason.contains("re-based"), "{}", d.reason);
    assert_eq!(d.api_permits, Some(64), "the cut is undone: {}", d.reason);
    // From the new no-load value, 30 ms is no queue: growth goes on.
    let d = law.decide(&window(64, 2133, 30.0));
    assert!(d.api_permits.is_some_and(|l| l > 64), "{}", d.reason);
}

/// A law that grew from `before` to `grown` by sqrt(limit) after its
/// doubling, and the decision on a window there that lost a third of the
/// throughput (contention, latency still low).
fn growth_that_lost() -> (Gradient, usize, usize, Decision) {
    let mut law = Gradient::new();
    law.decide(&window(20, 1000, 20.0)); // -> 40
    law.decide(&window(40, 2000, 40.0)); // cut -> 30, doubling over
    let before = law.limit();
    law.decide(&window(before, 1500, 20.0)); // grow by sqrt
    let grown = law.limit();
    let d = law.decide(&window(grown, 1000, 21.0));
    (law, before, grown, d)
}

#[test]
fn a_ceiling_learnt_before_the_api_got_slower_is_dropped() {
    let (mut law, _, grown, d) = growth_that_lost();
    assert!(d.reason.contains("at most"), "a ceiling: {}", d.reason);
    // The API gets 3x slower, whatever the load: cuts that do not lower
    // the latency re-base the no-load value...
    let mut rebased = false;
    for _ in 0..4 {
        let l = law.limit();
        let d = law.decide(&window(l, (l * 50 / 3) as u64, 60.0));
        rebased |= d.reason.contains("re-based");
    }
    assert!(rebased, "at {}", law.limit());
    // ...and the knee learnt at 20 ms no longer bounds growth at 60 ms.
    for _ in 0..4 {
        let l = law.limit();
        law.decide(&window(l, (l * 50 / 3) as u64, 60.0));
    }
    assert!(law.limit() > grown, "held under {grown}: {}", law.limit());
}

#[test]
fn growth_that_loses_throughput_is_undone_and_bisects_to_a_ceiling() {
    let (mut law, before, grown, d) = growth_that_lost();
    assert!(grown > before + 2, "{before} -> {grown}");
    assert_eq!(d.api_permits, Some(before), "{}", d.reason);
    assert!(d.reason.contains("lost throughput"), "{}", d.reason);
    // The knee lies between the two: growth goes on to halfway, and, held
    // there without a signal, halfway again to the level that lost (a
    // bisection), until the gap is narrower than a step near the knee.
    let halfway = (before + grown).div_ceil(2);
    let mut levels = vec![];
    for _ in 0..10 {
        let l = law.limit();
        law.decide(&window(l, 50 * l as u64, 20.0));
        levels.push(law.limit());
    }
    assert!(
        levels.contains(&halfway) || levels.contains(&(halfway - 1)),
        "{before} -> {grown} lost: never held halfway: {levels:?}"
    );
    assert!(
        law.limit() > halfway && law.limit() < grown,
        "{before} -> {grown} lost: at {} after growing again: {levels:?}",
        law.limit()
    );
}

/// A ceiling from pushback is not bisected like the others: probing past
/// a hard limit again costs another pause (and, in a cluster, one for
/// every member).
#[test]
fn a_pushback_ceiling_is_not_probed_again() {
    let mut law = Gradient::new();
    law.decide(&window(50, 2500, 20.0)); // -> 100
    // 60 calls served at 22 ms (mean): Little's law agrees with the count.
    let mut w = window(100, 2700, 20.0);
    w.throttled = 40;
    let d = law.decide(&w);
    assert_eq!(d.api_permits, Some(54), "0.9 x (100 - 40): {}", d.reason);
    // 20 windows of 1 s: within `ceiling_memory`.
    for _ in 0..20 {
        let l = law.limit();
        law.decide(&window(l, (l * 50) as u64, 20.0));
        assert!(law.limit() <= 60, "probed past the count: {}", law.limit());
    }
    assert_eq!(law.limit(), 60, "grows back to the count");
}

#[test]
fn saturated_workers_grow_to_the_pool() {
    let mut law = Gradient::new();
    let mut w = window(8, 400, 20.0);
    w.workers = 2;
    w.max_workers = 8;
    w.workers_idle = 0.02;
    let d = law.decide(&w);
    assert_eq!(d.workers, Some(3), "{}", d.reason);
    w.workers = 8;
    assert_eq!(law.decide(&w).workers, None, "at the pool");
}

#[test]
fn nonsense_windows_and_parameters_never_panic() {
    let mut law = Gradient::with_params(GradientParams {
        tolerance: f64::NAN,
        backoff: -1.0,
        failure_margin: f64::INFINITY,
        headroom: 0.0,
        latencies_per_window: f64::NAN,
        min_window: Duration::ZERO,
        max_window: Duration::MAX,
        min_limit: 0,
        max_limit: usize::MAX,
        ..GradientParams::default()
    });
    let extremes = [
        Window::default(),
        Window {
            elapsed: Duration::MAX,
            agents: usize::MAX,
            api_permits: usize::MAX,
            io_completions: u64::MAX,
            latency_p50: Some(Duration::MAX),
            latency_p90: Some(Duration::ZERO),
            latency_mean: Some(Duration::MAX),
            mean_in_flight: f64::NAN,
            timeouts: u64::MAX,
            errors: u64::MAX,
            throttled: u64::MAX,
            retry_after: Some(Duration::MAX),
            paused: Duration::MAX,
            ..Window::default()
        },
        window(1, 1, 0.0),
    ];
    for w in extremes.iter().cycle().take(30) {
        let d = law.decide(w);
        if let Some(l) = d.api_permits {
            assert!((1..=gearshift::MAX_CONCURRENCY).contains(&l), "{d:?}");
        }
        assert!(law.window() >= Duration::from_millis(10));
    }
}

#[test]
fn a_failure_cut_that_does_not_lower_the_share_is_undone_and_re_bases() {
    let mut law = healthy_at_40();
    assert_eq!(law.limit(), 40);
    // A steady fault mix starts: 10% of calls stall, whatever the load.
    let mut w = window(40, 1800, 20.0);
    w.timeouts = 200;
    let d = law.decide(&w);
    let cut = d.api_permits.expect("a jump above the baseline cuts");
    assert!(d.reason.contains("failures"), "{}", d.reason);
    // At the lower limit the share stays 10%: not overload.
    let mut w = window(cut, 1800, 20.0);
    w.timeouts = 200;
    let d = law.decide(&w);
    assert!(d.reason.contains("re-based"), "{}", d.reason);
    assert_eq!(d.api_permits, Some(40), "the cut is undone: {}", d.reason);
    // 10% is the baseline now: it cuts no more.
    let mut w = window(40, 1800, 20.0);
    w.timeouts = 200;
    let d = law.decide(&w);
    assert!(!d.reason.contains("failures"), "{}", d.reason);
}

#[test]
fn doubling_windows_last_a_latency_and_a_half() {
    let mut law = Gradient::with_params(GradientParams {
        min_window: Duration::from_millis(10),
        ..GradientParams::default()
    });
    // The mean latency of these windows is 1.1 x 100 ms = 110 ms.
    law.decide(&window(4, 40, 100.0));
    assert_eq!(law.window(), Duration::from_millis(165), "1.5 latencies");
    law.decide(&window(8, 80, 100.0));
    // Latency doubles: the doubling is over, the windows after the cut
    // read 4 latencies (the window length is set as a window begins).
    let d = law.decide(&window(16, 80, 200.0));
    assert!(d.reason.contains("latency"), "{}", d.reason);
    law.decide(&window(12, 100, 120.0));
    assert_eq!(law.window(), Duration::from_millis(528), "4 x 132 ms");

    // With the default `min_window` (200 ms), a fast API's doubling
    // windows are still 1.5 latencies (of 22 ms), down to 20 ms.
    let mut law = Gradient::new();
    law.decide(&window(4, 400, 20.0));
    assert_eq!(
        law.window(),
        Duration::from_millis(33),
        "{:?}",
        law.window()
    );
    law.decide(&window(8, 800, 5.0));
    assert_eq!(law.window(), Duration::from_millis(20), "the floor");
}

/// `windows` healthy windows at the law's own limit: no-load latency (20
/// ms), every call in flight turning over, so it grows up to any ceiling.
fn at_no_load(law: &mut Gradient, windows: usize) {
    for _ in 0..windows {
        let l = law.limit();
        law.decide(&window(l, 50 * l as u64, 20.0));
    }
}

#[test]
fn a_failure_cut_bounds_growth_only_once_the_share_clearly_fell() {
    // Healthy windows at 40, then a window where 30% of calls time out.
    let run = |after: (u64, u64)| {
        let mut law = healthy_at_40();
        let mut w = window(40, 1400, 20.0);
        w.timeouts = 600;
        let cut = law.decide(&w).api_permits.expect("30% over 0% cuts");
        // The window after the cut: `after` = (successes, timeouts).
        let mut w = window(cut, after.0, 20.0);
        w.timeouts = after.1;
        law.decide(&w);
        // Healthy windows at no-load latency: growth up to any ceiling.
        at_no_load(&mut law, 12);
        (cut, law.limit())
    };
    // The API took 40 x 0.7 = 28 calls: the cut goes to 0.9 x 28, and 28
    // is the ceiling once the share fell to 1% of 2,000 calls.
    let (cut, grown) = run((1980, 20));
    assert_eq!(cut, 25);
    assert!(
        grown <= 28,
        "grew from {cut} to {grown} past the ceiling 28"
    );
    // 2 of 12 calls failed: too few to tell, the cut stands but bounds nothing.
    let (cut, grown) = run((10, 2));
    assert!(grown > 30, "held at {grown} (cut to {cut}) on no evidence");
}

/// A cut on two failures in five calls stands, but the share's fall after
/// it (to a fault floor of 6%) is within the noise of those five calls: it
/// shows no level too high, and growth goes past it.
#[test]
fn a_failure_cut_from_a_few_calls_sets_no_ceiling() {
    let mut law = Gradient::new();
    for _ in 0..3 {
        let l = law.limit().max(40);
        law.decide(&window(l, 50 * l as u64, 20.0));
    }
    let before = law.limit();
    assert_eq!(before, 320, "doubled from 40");
    let mut w = window(before, 3, 20.0);
    w.errors = 2;
    let cut = law.decide(&w).api_permits.expect("40% over 0% cuts");
    assert!(cut < before, "{cut}");
    let mut w = window(cut, 100, 20.0);
    w.errors = 6;
    let d = law.decide(&w);
    assert!(
        !d.reason.contains("re-based"),
        "the cut stands: {}",
        d.reason
    );
    at_no_load(&mut law, 12);
    assert!(
        law.limit() > before,
        "held at {} under {before}: a ceiling from five calls",
        law.limit()
    );
}

/// `window` with a noisy API: p90 at e^(1.28 x 0.86) of the median
/// (lognormal sigma 0.86).
fn noisy(limit: usize, ok: u64, p50_ms: f64) -> Window {
    Window {
        latency_p90: Some(Duration::from_secs_f64(p50_ms * 3.0 / 1e3)),
        ..window(limit, ok, p50_ms)
    }
}

#[test]
fn a_no_load_latency_read_low_from_a_few_calls_is_pooled_with_the_windows_after_it() {
    // The first window's three calls read 80 ms; the API's median is 200
    // ms at any load here. As a minimum, 80 ms (or one standard error up,
    // 150 ms) would make every later window look queued and hold growth.
    let mut law = Gradient::new();
    law.decide(&noisy(4, 3, 80.0));
    for _ in 0..6 {
        let l = law.limit();
        law.decide(&noisy(l, 60 * l as u64 / 4, 200.0));
    }
    assert!(law.limit() >= 64, "limit {}", law.limit());
    // Pooled, it still tells a doubled latency from no-load: a queue.
    let l = law.limit();
    let d = law.decide(&noisy(l, 4000, 400.0));
    assert!(d.api_permits.is_some_and(|n| n < l), "{}", d.reason);
}

#[test]
fn a_window_without_a_successful_call_lengthens_the_next() {
    let mut law = Gradient::with_params(GradientParams {
        min_window: Duration::from_millis(10),
        ..GradientParams::default()
    });
    law.decide(&window(4, 400, 10.0));
    let short = law.window();
    let failed = Window {
        io_completions: 0,
        timeouts: 1,
        latency_p50: None,
        latency_p90: None,
        latency_mean: None,
        ..window(8, 0, 10.0)
    };
    law.decide(&failed);
    assert!(law.window() >= 2 * short, "{:?}", law.window());
    law.decide(&failed);
    assert!(law.window() >= 4 * short, "{:?}", law.window());
}

/// `w` cut to `elapsed_ms`, `throttled` calls refused with `Retry-After: 2`
/// and the budget paused for `paused_ms` of it.
fn pushed_back(w: Window, elapsed_ms: u64, paused_ms: u64, throttled: u64) -> Window {
    Window {
        elapsed: Duration::from_millis(elapsed_ms),
        paused: Duration::from_millis(paused_ms),
        throttled,
        retry_after: Some(Duration::from_secs(2)),
        ..w
    }
}

#[test]
fn refused_calls_bound_what_the_api_took_where_little_s_law_overcounts() {
    let mut law = Gradient::new();
    law.decide(&window(64, 3200, 40.0)); // -> 128
    // At 128 a limit of 64 calls refuses 51, and the budget pauses for 2 s
    // 2 ms into the window: the 53 calls that end in the pause make the
    // rate per unpaused second, and Little's law, absurd (thousands).
    let d = law.decide(&pushed_back(window(128, 53, 80.0), 101, 99, 51));
    assert_eq!(d.api_permits, Some(69), "0.9 x (128 - 51): {}", d.reason);
}

#[test]
fn refused_calls_count_what_the_api_took_unless_little_s_law_clearly_says_fewer() {
    let mut law = Gradient::new();
    law.decide(&window(48, 2400, 20.0)); // -> 96
    // At 96 a hard limit of 62 refuses 34. The 40 calls that ended read
    // 53 by Little's law, 72 at two standard errors up: the count of the
    // calls not refused agrees, and it is exact. The cut and the ceiling
    // follow it.
    let d = law.decide(&pushed_back(window(96, 40, 120.0), 200, 100, 34));
    assert_eq!(d.api_permits, Some(56), "0.9 x (96 - 34): {}", d.reason);
    for _ in 0..20 {
        let l = law.limit();
        law.decide(&window(l, (l * 50) as u64, 20.0));
    }
    assert_eq!(law.limit(), 62, "grows back to the ceiling, not past it");
}

#[test]
fn refused_calls_at_the_peak_count_what_the_api_took_while_the_agents_ramp() {
    let mut law = Gradient::new();
    law.decide(&window(160, 8000, 20.0)); // -> 320
    // The window after the raise: the agents ramp from 160 to 320, a hard
    // limit of 288 refuses 32 at the peak. Little's law reads the mean in
    // flight (10,400 calls/s x 22 ms = 229); the count at the peak is what
    // the API took.
    let mut ramp = pushed_back(window(320, 10_400, 20.0), 1000, 0, 32);
    let d = law.decide(&ramp);
    assert_eq!(d.api_permits, Some(259), "0.9 x (320 - 32): {}", d.reason);
    // Without the peak, the whole limit counts as sent, and Little's law,
    // clearly fewer, stands.
    let mut law = Gradient::new();
    law.decide(&window(160, 8000, 20.0));
    ramp.peak_in_flight = 0;
    let d = law.decide(&ramp);
    assert_eq!(d.api_permits, Some(206), "0.9 x 229: {}", d.reason);
}

#[test]
fn a_window_paused_throughout_judges_nothing() {
    let mut law = Gradient::new();
    law.decide(&window(16, 800, 20.0)); // -> 32
    // Inside a `Retry-After` pause only calls started before it end, some
    // slowly: no reading of the limit, which no call started at.
    let w = Window {
        paused: Duration::from_secs(1),
        ..window(32, 5, 200.0)
    };
    let d = law.decide(&w);
    assert_eq!(d.api_permits, None, "{}", d.reason);
    assert!(d.reason.contains("paused"), "{}", d.reason);
}

/// A window of the tuner's own length on an API that serves `capacity`
/// calls at once at `base_ms` and queues the rest (latency grows with the
/// calls in flight past capacity, goodput stays at its peak).
fn queued(law: &Gradient, capacity: f64, base_ms: f64) -> Window {
    let n = law.limit().max(1) as f64;
    let secs = law.window().as_secs_f64();
    let p50 = base_ms * (n / capacity).max(1.0);
    Window {
        elapsed: law.window(),
        ..window(
            n as usize,
            (n.min(capacity) / base_ms * 1e3 * secs) as u64,
            p50,
        )
    }
}

#[test]
fn a_start_above_the_knee_is_drained_down_to_it() {
    // 64 calls against an API that serves 10: the first window is already
    // queued (latency 6.4x no-load), so latency alone never shows the
    // knee. The doubling gains no goodput: the drain halves down to it.
    let mut law = Gradient::new();
    law.decide(&Window {
        elapsed: law.window(),
        ..window(64, 40, 320.0)
    });
    let mut limits = Vec::new();
    for _ in 0..20 {
        let w = queued(&law, 10.0, 50.0);
        law.decide(&w);
        limits.push(law.limit());
    }
    let tail = &limits[10..];
    assert!(tail.iter().all(|&n| n <= 20), "limits {limits:?}");
    assert!(tail.iter().any(|&n| n >= 10), "limits {limits:?}");
}

#[test]
fn a_series_of_cuts_is_judged_with_the_noise_of_its_first_window() {
    let mut law = Gradient::new();
    law.decide(&window(16, 1600, 10.0));
    law.decide(&window(32, 3200, 10.0)); // no-load 10 ms; -> 64
    // The series begins on ten calls that read 16 ms (1.6x: a cut)...
    let d = law.decide(&window(64, 10, 16.0));
    assert!(d.api_permits.is_some_and(|n| n < 64), "{}", d.reason);
    // ...then a precise 30 ms halves the limit...
    let l = law.limit();
    law.decide(&window(l, 3000, 30.0));
    // ...and 16 ms at a third of the calls. Against the first window's 16
    // ms that is "no fall", but ten calls cannot tell 16 ms from 24: the
    // series is not judged yet, and 1.6x no-load is still a queue.
    let l = law.limit();
    let d = law.decide(&window(l, 3000, 16.0));
    assert!(!d.reason.contains("re-based"), "{}", d.reason);
    assert!(d.api_permits.is_some_and(|n| n < l), "{}", d.reason);
}

#[test]
fn latency_over_tolerance_cuts_only_when_clear_of_the_noise() {
    let mut law = Gradient::new();
    law.decide(&window(4, 400, 20.0)); // no-load 20 ms from 400 calls; -> 8
    // Four calls of a noisy API in 10 ms at a median of 40 ms: 2x, but
    // four calls' median is within a factor of about three of the truth.
    let d = law.decide(&Window {
        elapsed: Duration::from_millis(10),
        ..noisy(8, 4, 40.0)
    });
    assert_eq!(d.api_permits, None, "{}", d.reason);
    // 800 calls at 40 ms: a queue.
    let d = law.decide(&window(8, 800, 40.0));
    assert_eq!(d.api_permits, Some(6), "8 x 1.5 / 2: {}", d.reason);
}

#[test]
fn windows_of_a_call_or_two_do_not_teach_the_failure_baseline() {
    let mut law = Gradient::new();
    // One call of two failed, then the only call failed: 50% and 100%,
    // each within its noise of nothing. As the baseline they would hide
    // any overload after them.
    law.decide(&Window {
        errors: 1,
        ..window(16, 1, 20.0)
    });
    let l = law.limit();
    law.decide(&Window {
        errors: 1,
        latency_p50: None,
        latency_p90: None,
        latency_mean: None,
        ..window(l, 0, 20.0)
    });
    // 60 of 100 calls fail: overload.
    let l = law.limit();
    let d = law.decide(&Window {
        errors: 60,
        ..window(l, 40, 20.0)
    });
    assert!(d.api_permits.is_some_and(|n| n < l), "{}", d.reason);
}

#[test]
fn the_first_window_is_short_and_never_longer_than_min_window() {
    // Before any latency is known: 100 ms, so the start costs little.
    assert_eq!(Gradient::new().window(), Duration::from_millis(100));
    let law = Gradient::with_params(GradientParams {
        min_window: Duration::from_millis(30),
        ..GradientParams::default()
    });
    assert_eq!(law.window(), Duration::from_millis(30));
}

/// On an API slower than the first window, the calls that end in it are
/// the fast ones: read as the no-load latency, they make every later
/// window look queued. A window whose calls still running carry most of
/// its time in flight reads no latency.
#[test]
fn a_window_whose_calls_are_mostly_still_running_reads_no_latency() {
    let mut law = Gradient::new();
    // 16 calls in flight throughout; 4 fast ones ended (60 ms each) where
    // the API's median is 180 ms.
    let censored = Window {
        elapsed: Duration::from_millis(100),
        mean_in_flight: 16.0,
        mean_in_flight_ended: Some(2.4),
        ..window(16, 4, 60.0)
    };
    let d = law.decide(&censored);
    assert_eq!(d.api_permits, None, "{}", d.reason);
    assert!(d.reason.contains("still running"), "{}", d.reason);
    // Once the calls end as they start, the median is the API's: at the
    // no-load latency, the limit doubles (read from the censored window,
    // 180 ms would be 3x the no-load and cut it).
    let d = law.decide(&Window {
        mean_in_flight_ended: Some(16.0),
        ..window(16, 88, 180.0)
    });
    assert_eq!(d.api_permits, Some(32), "{}", d.reason);
}

/// In a window longer than a turnover of its calls, the share still running
/// is the noise of the calls' ages at its two ends (a few long calls that
/// span it), not a start: it does not stop the law.
#[test]
fn a_window_long_enough_for_its_calls_to_turn_over_is_read() {
    let mut law = Gradient::new();
    // 88 calls ended, 5 turnovers of the 16 in flight; calls still running
    // carry half of the time in flight.
    let d = law.decide(&Window {
        mean_in_flight: 16.0,
        mean_in_flight_ended: Some(8.0),
        ..window(16, 88, 180.0)
    });
    assert_eq!(d.api_permits, Some(32), "{}", d.reason);
}

/// A timeout ends a call its whole length after it began: the timeouts of
/// the windows just after a failure cut began before it. Read as the cut's
/// verdict, they said it did not help and undid it.
#[test]
fn failures_that_began_before_a_failure_cut_do_not_judge_it() {
    let mut law = healthy_at_40();
    // 20 of 40 slots hang until a 1 s timeout; 20 serve 200 ms calls:
    // 100 successes, 20 timeouts, 40 call-seconds in 1 s.
    let dropping = |elapsed: f64| Window {
        elapsed: Duration::from_secs_f64(elapsed),
        timeouts: (20.0 * elapsed) as u64,
        mean_in_flight: 40.0,
        mean_in_flight_ended: Some(40.0),
        ..window(40, (100.0 * elapsed) as u64, 180.0)
    };
    let d = law.decide(&dropping(1.0));
    let cut = d.api_permits.expect("failures over their baseline cut");
    assert!(cut < 40, "{}", d.reason);
    // Half a second later, the timeouts ending began a second earlier.
    let d = law.decide(&Window {
        agents: cut,
        api_permits: cut,
        ..dropping(0.5)
    });
    assert_eq!(d.api_permits, None, "{}", d.reason);
    assert!(d.reason.contains("before the cut"), "{}", d.reason);
}

/// A `Retry-After` pauses the budget at the first 429s: the calls not yet
/// sent were neither taken nor refused. What the API took is what was sent
/// (the most in flight at once) less what it refused, not the limit less.
#[test]
fn pushback_counts_the_calls_sent_not_the_limit() {
    let mut law = Gradient::new();
    law.decide(&window(64, 3200, 20.0)); // -> 128
    // 76 calls went out before the pause; the API refused 12 (its limit
    // is 64). Three calls ended: too few for Little's law.
    let d = law.decide(&Window {
        throttled: 12,
        retry_after: Some(Duration::from_secs(2)),
        peak_in_flight: 76,
        paused: Duration::from_millis(60),
        elapsed: Duration::from_millis(70),
        ..window(128, 3, 20.0)
    });
    assert_eq!(d.api_permits, Some(58), "0.9 x (76 - 12): {}", d.reason);
}

/// At one call in flight no queue is ours: a latency clearly over the
/// no-load estimate means the estimate was read low (a window of one fast
/// call), and there is no cut left to make. Holding on it kept a fed-by-
/// another-API stage at 1 call for a whole run.
#[test]
fn at_the_fewest_calls_a_latency_over_the_estimate_re_bases_it() {
    let mut law = Gradient::new();
    // Cut to 1 by an unused limit, then one fast call reads 0.2 ms while
    // the agents still wait on the flow.
    let with_idle = |mut w: Window, idle: f64| {
        w.agents_idle = idle;
        w
    };
    law.decide(&with_idle(window(6, 3, 10.0), 0.9));
    let d = law.decide(&with_idle(window(1, 1, 0.2), 0.43));
    assert_eq!(law.limit(), 1, "{}", d.reason);
    // The API's latency is 11 ms: re-based, and then the limit, used,
    // grows.
    let d = law.decide(&with_idle(window(1, 90, 11.0), 0.1));
    assert!(d.reason.contains("re-based"), "{}", d.reason);
    let d = law.decide(&with_idle(window(1, 90, 11.0), 0.1));
    assert!(d.api_permits.is_some_and(|l| l > 1), "{}", d.reason);
}

/// Only the window just after a cut began at the higher limit: the windows
/// after it judge the cut on the limit they ran at. Judged on the higher
/// one forever, a series that had worked stayed open, and a later series
/// (the API got slower) was judged against it: the re-base went back to
/// where the first queue was.
#[test]
fn a_series_of_cuts_is_judged_once_its_windows_run_at_the_cut_limit() {
    let mut law = Gradient::new();
    law.decide(&window(16, 1600, 10.0));
    law.decide(&window(32, 3200, 10.0)); // no-load 10 ms; -> 64
    // A queue at 64: cut to 32.
    let d = law.decide(&window(64, 3000, 30.0));
    assert_eq!(d.api_permits, Some(32), "{}", d.reason);
    // At 32 latency is within the tolerance: the cut worked.
    law.decide(&window(32, 3000, 14.0));
    law.decide(&window(32, 3000, 14.0));
    // Then the API gets 3x slower at any load: cuts at 32, then 16...
    let d = law.decide(&window(32, 3000, 45.0));
    assert_eq!(d.api_permits, Some(16), "{}", d.reason);
    let d = law.decide(&window(16, 3000, 45.0));
    assert_eq!(d.api_permits, Some(8), "{}", d.reason);
    // ...and at 8 the latency has not fallen: the new series is undone,
    // back to where it began, not to the old queue's 64.
    let d = law.decide(&window(8, 3000, 45.0));
    assert!(d.reason.contains("re-based"), "{}", d.reason);
    assert_eq!(d.api_permits, Some(32), "{}", d.reason);
}

/// A first window of one call that failed reads a share of 100% against a
/// baseline of 0, clear of its noise by Laplace's estimate: it cut to half
/// and made that a ceiling for 30 s, at an API with a steady 3% of 5xx.
#[test]
fn one_failed_call_is_no_share_to_cut_on() {
    let failed = |errors: u64| Window {
        errors,
        latency_p50: None,
        latency_p90: None,
        latency_mean: None,
        ..window(4, 0, 20.0)
    };
    let d = Gradient::new().decide(&failed(1));
    assert_eq!(d.api_permits, None, "{}", d.reason);
    let d = Gradient::new().decide(&failed(2));
    assert_eq!(d.api_permits, Some(2), "two are: {}", d.reason);
}
