//! Metrics export (feature `metrics`, issue 24): a pipeline with known
//! failures, retries and tuner decisions publishes its figures through the
//! `metrics` facade; the Prometheus exporter serves them over HTTP on
//! 127.0.0.1, and a scrape shows each under its Prometheus name and labels,
//! with the values of the pipeline's own report.

use std::collections::BTreeMap;
use std::time::Duration;

use gearshift::{Api, Decision, ErrorKind, Pipeline, RetryPolicy, StageError, Tuner, Window};
use metrics_exporter_prometheus::PrometheusBuilder;

const ITEMS: u64 = 200;
const CALL: Duration = Duration::from_millis(5);

/// One more agent every window than it set the window before: every
/// decision is `up`.
struct Up {
    agents: usize,
}

impl Tuner for Up {
    fn name(&self) -> &str {
        "up"
    }
    fn window(&self) -> Duration {
        Duration::from_millis(20)
    }
    fn decide(&mut self, _: &Window) -> Decision {
        // At most 20 decisions: the report keeps the last 64.
        if self.agents >= 24 {
            return Decision::hold("test: enough");
        }
        self.agents += 1;
        Decision {
            agents: Some(self.agents),
            reason: "test: always up".into(),
            ..Decision::default()
        }
    }
}

/// Starts the exporter on a free port of 127.0.0.1 and returns the scrape
/// URL. The port is found by binding port 0 and letting it go, so another
/// process may take it first: then another is tried.
fn start_exporter() -> String {
    for _ in 0..10 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        match PrometheusBuilder::new().with_http_listener(addr).install() {
            Ok(()) => return format!("http://{addr}/metrics"),
            Err(e) => eprintln!("exporter on {addr}: {e}; trying another port"),
        }
    }
    panic!("no free port for the exporter");
}

/// A scrape as `name{label="value",...}` (labels sorted) -> value.
fn parse(scrape: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in scrape
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').expect("series and value");
        let key = match series.split_once('{') {
            Some((name, labels)) => {
                let mut labels: Vec<&str> = labels.trim_end_matches('}').split(',').collect();
                labels.sort_unstable();
                format!("{name}{{{}}}", labels.join(","))
            }
            None => series.to_owned(),
        };
        out.insert(key, value.parse().expect("a number"));
    }
    out
}

fn get(m: &BTreeMap<String, f64>, key: &str, scrape: &str) -> f64 {
    *m.get(key)
        .unwrap_or_else(|| panic!("no series {key} in the scrape:\n{scrape}"))
}

/// Items x % 10 == 0 are rejected (a 4xx: not retried, the item fails);
/// items x % 10 == 3 fail with a 5xx on their first call and succeed on the
/// retry; every call takes 5 ms.
async fn call(x: u64, attempt: u32) -> Result<u64, StageError> {
    tokio::time::sleep(CALL).await;
    match x % 10 {
        0 => Err(StageError::msg(ErrorKind::Rejected, "planned 4xx")),
        3 if attempt == 1 => Err(StageError::msg(ErrorKind::Server, "planned 5xx")),
        _ => Ok(x),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_shows_every_figure_under_its_prometheus_name() {
    let url = start_exporter();
    let search = Api::new("search")
        .retry(RetryPolicy::attempts(3).with_backoff(Duration::from_millis(1), CALL))
        .tuner(Up { agents: 4 });
    let report = Pipeline::from_iter(0..ITEMS)
        .io_with(|x, c| call(x, c.attempt))
        .named("fetch")
        .api(&search)
        .cpu(|x| x * 2)
        .named("score")
        .run()
        .await
        .expect("the pipeline runs");
    // Known outcomes: 20 rejected, 20 retried once, the rest at once.
    assert_eq!((report.ok, report.failed), (180, 20), "{report}");

    // The final figures are published before `join` returns: one scrape
    // after it sees them all.
    let scrape = tokio::time::timeout(Duration::from_secs(30), async {
        reqwest::get(&url).await?.error_for_status()?.text().await
    })
    .await
    .expect("the scrape answers within 30 s")
    .expect("the scrape succeeds");
    let m = parse(&scrape);
    let v = |key: &str| get(&m, key, &scrape);

    // Types and help texts.
    for (name, kind) in [
        ("gearshift_items_ok_total", "counter"),
        ("gearshift_stage_items_out_total", "counter"),
        ("gearshift_stage_queue_length", "gauge"),
        ("gearshift_api_in_flight", "gauge"),
        ("gearshift_stage_latency_seconds", "summary"),
    ] {
        assert!(
            scrape.contains(&format!("# TYPE {name} {kind}")),
            "{name} is a {kind}:\n{scrape}"
        );
        assert!(scrape.contains(&format!("# HELP {name} ")), "{scrape}");
    }

    // Pipeline-wide.
    assert_eq!(v("gearshift_items_taken_total"), ITEMS as f64);
    assert_eq!(v("gearshift_items_ok_total"), 180.0);
    assert_eq!(
        v(r#"gearshift_items_failed_total{kind="rejected_4xx"}"#),
        20.0
    );
    assert_eq!(v(r#"gearshift_items_failed_total{kind="timeout"}"#), 0.0);
    assert_eq!(v("gearshift_items_cancelled_total"), 0.0);
    assert_eq!(v("gearshift_items_in_flight"), 0.0);
    assert_eq!(v("gearshift_item_latency_seconds_count"), 180.0);

    // Per stage: items out of the IO stage are the items that succeeded.
    let fetch = report.stages.iter().find(|s| s.name == "fetch").unwrap();
    assert_eq!(v(r#"gearshift_stage_items_in_total{stage="fetch"}"#), 200.0);
    assert_eq!(
        v(r#"gearshift_stage_items_out_total{stage="fetch"}"#),
        180.0
    );
    assert_eq!(
        v(r#"gearshift_stage_items_failed_total{stage="fetch"}"#),
        20.0
    );
    assert_eq!(
        v(r#"gearshift_stage_items_out_total{stage="score"}"#),
        180.0
    );
    assert_eq!(v(r#"gearshift_stage_retries_total{stage="fetch"}"#), 20.0);
    assert_eq!(v(r#"gearshift_stage_attempts_total{stage="fetch"}"#), 220.0);
    assert_eq!(
        v(r#"gearshift_stage_errors_total{kind="server_5xx",stage="fetch"}"#),
        20.0
    );
    assert_eq!(
        v(r#"gearshift_stage_errors_total{kind="rejected_4xx",stage="fetch"}"#),
        20.0
    );
    assert_eq!(v(r#"gearshift_stage_items_in_flight{stage="fetch"}"#), 0.0);
    assert_eq!(v(r#"gearshift_stage_queue_length{stage="score"}"#), 0.0);
    assert_eq!(
        v(r#"gearshift_stage_queue_capacity{stage="fetch"}"#),
        fetch.queue_capacity as f64
    );
    assert_eq!(
        v(r#"gearshift_stage_agents_target{stage="fetch"}"#),
        fetch.concurrency_target as f64
    );
    assert!(v(r#"gearshift_stage_workers{stage="score"}"#) >= 1.0);
    assert!(v(r#"gearshift_stage_busy_ratio{stage="fetch"}"#) > 0.0);
    assert!(v(r#"gearshift_stage_blocked_get_seconds{stage="score"}"#) >= 0.0);
    // One latency sample per successful call, in seconds.
    assert_eq!(
        v(r#"gearshift_stage_latency_seconds_count{stage="fetch"}"#),
        180.0
    );
    let p50 = v(r#"gearshift_stage_latency_seconds{quantile="0.5",stage="fetch"}"#);
    assert!((0.004..0.5).contains(&p50), "p50 of 5 ms calls: {p50} s");

    // Per API budget.
    assert_eq!(v(r#"gearshift_api_calls_total{api="search"}"#), 220.0);
    assert_eq!(v(r#"gearshift_api_calls_ok_total{api="search"}"#), 180.0);
    assert_eq!(v(r#"gearshift_api_throttled_total{api="search"}"#), 0.0);
    assert_eq!(v(r#"gearshift_api_timeouts_total{api="search"}"#), 0.0);
    assert_eq!(
        v(r#"gearshift_api_errors_total{api="search",kind="server_5xx"}"#),
        20.0
    );
    assert_eq!(v(r#"gearshift_api_in_flight{api="search"}"#), 0.0);
    assert_eq!(
        v(r#"gearshift_api_latency_seconds_count{api="search"}"#),
        180.0
    );
    // No limit on calls in flight: no series, rather than a made-up number.
    assert_eq!(report.apis[0].max_in_flight, None);
    assert!(!m.contains_key(r#"gearshift_api_permits{api="search"}"#));

    // Controller decisions, by direction: the tuner only ever goes up.
    let decisions = report.decisions.len();
    assert!(
        (1..64).contains(&decisions),
        "the run lasts a few windows: {report}"
    );
    let by_direction: Vec<(&String, &f64)> = m
        .iter()
        .filter(|(k, _)| k.starts_with("gearshift_tuner_decisions_total"))
        .collect();
    let [(series, &count)] = by_direction[..] else {
        panic!("one direction only: {by_direction:?}\n{scrape}");
    };
    assert_eq!(
        series,
        r#"gearshift_tuner_decisions_total{api="search",direction="up"}"#
    );
    // The controller stops when the final report is out, so it may apply
    // one more decision after the report was taken; never fewer.
    assert!(
        (decisions..=decisions + 1).contains(&(count as usize)),
        "{count} decisions counted, {decisions} in the report"
    );
}
