//! Unit tests of the limits: each message quotes its constant.

use super::*;

fn refused(change: impl FnOnce(&mut Config)) -> String {
    let mut c = Config::default().with_cores(2);
    change(&mut c);
    c.validate().unwrap_err().to_string()
}

/// Defect 2 of issue 20: `f64::MIN_POSITIVE` validated, then panicked
/// in the limiter.
#[test]
fn rate_limits_the_limiter_cannot_honour_are_refused() {
    let range = format!("between {MIN_RATE_LIMIT:e} and {MAX_RATE_LIMIT:e}");
    for r in [f64::MIN_POSITIVE, 1e-300, MIN_RATE_LIMIT / 2.0, 2e9, 0.0] {
        let msg = refused(|c| c.rate_limit = Some(r));
        assert!(msg.starts_with("rate_limit must be "), "{msg}");
        assert!(
            msg.contains(&range) && msg.ends_with(&format!("got {r:?}")),
            "{msg}"
        );
    }
    for r in [MIN_RATE_LIMIT, 1.0, MAX_RATE_LIMIT] {
        let c = Config {
            rate_limit: Some(r),
            ..Config::default()
        };
        assert!(c.validate().is_ok(), "{r}");
    }
}

/// Defect 12 of issue 20: a million workers validated, then `spawn`
/// tried to start a million threads.
#[test]
fn counts_a_machine_cannot_honour_are_refused_with_their_limit() {
    let n = 1usize << 20;
    assert_eq!(
        refused(|c| c.workers = n),
        format!("workers must be between 1 and {MAX_WORKERS}, got {n}")
    );
    assert_eq!(
        refused(|c| c.max_workers = Some(MAX_WORKERS + 1)),
        format!(
            "max_workers must be between 1 and {MAX_WORKERS}, got {}",
            MAX_WORKERS + 1
        )
    );
    // Without max_workers, the pool is sized by the cores: bounded too.
    assert!(refused(|c| c.cores = n).starts_with("cores must be between 1 and "));
    assert_eq!(
        refused(|c| c.agents = Agents::Total(MAX_AGENTS + 1)),
        format!(
            "agents must be between 1 and {MAX_AGENTS}, got {}",
            MAX_AGENTS + 1
        )
    );
    assert!(
        refused(|c| c.agents = Agents::PerCore(MAX_AGENTS as f64))
            .starts_with(&format!("agents must be between 1 and {MAX_AGENTS}"))
    );
    assert_eq!(
        refused(|c| c.agents = Agents::PerCore(f64::NAN)),
        format!("agents_per_core must be a finite number > 0 and <= {MAX_AGENTS}, got NaN")
    );
    assert!(
        refused(|c| c.api_permits = Some(MAX_CONCURRENCY + 1))
            .contains(&format!("between 1 and {MAX_CONCURRENCY}"))
    );
    assert!(
        refused(|c| c.channel_capacity = MAX_CAPACITY + 1)
            .contains(&format!("between 1 and {MAX_CAPACITY}"))
    );
    assert!(
        refused(|c| c.retry.max_attempts = MAX_ATTEMPTS + 1)
            .contains(&format!("between 1 and {MAX_ATTEMPTS}"))
    );
    let most = Config {
        workers: MAX_WORKERS,
        max_workers: Some(MAX_WORKERS),
        agents: Agents::Total(MAX_AGENTS),
        ..Config::default().with_cores(MAX_WORKERS)
    };
    assert!(most.validate().is_ok());
    assert_eq!(most.pool_threads(), MAX_WORKERS);
}

#[test]
fn max_pause_is_positive_and_at_most_the_duration_cap() {
    assert_eq!(Config::default().max_pause, DEFAULT_MAX_PAUSE);
    assert!(refused(|c| c.max_pause = Duration::ZERO).starts_with("max_pause "));
    assert!(refused(|c| c.max_pause = Duration::MAX).starts_with("max_pause "));
    let c = Config {
        max_pause: MAX_DURATION,
        ..Config::default()
    };
    assert!(c.validate().is_ok());
}

#[test]
fn durations_from_seconds_are_checked() {
    for bad in [
        f64::NAN,
        -1.0,
        f64::INFINITY,
        1e300,
        MAX_DURATION.as_secs_f64() * 2.0,
    ] {
        assert!(duration_from_secs("batch_wait", bad).is_err(), "{bad}");
    }
    assert_eq!(
        duration_from_secs("batch_wait", 0.25),
        Ok(Duration::from_millis(250))
    );
}
