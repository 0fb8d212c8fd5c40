//! Reports as JSON (feature `serde`, issue 24): a real run's [`Report`],
//! with its stages, agents, API budgets and tuner decisions, serializes
//! with durations as seconds and error kinds and stage kinds by name.

use std::time::Duration;

use gearshift::{Api, Decision, ErrorKind, Pipeline, StageError, Tuner, Window};
use serde_json::Value;

/// One more agent every window, so the report has decisions.
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_report_serializes_to_json() {
    let search = Api::new("search").tuner(Up { agents: 4 });
    let report = Pipeline::from_iter(0..100u64)
        .io(|x| async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            if x % 10 == 0 {
                Err(StageError::msg(ErrorKind::Rejected, "planned 4xx"))
            } else {
                Ok(x)
            }
        })
        .named("fetch")
        .api(&search)
        .cpu(|x| x + 1)
        .named("score")
        .run()
        .await
        .expect("the pipeline runs");
    assert_eq!((report.ok, report.failed), (90, 10), "{report}");

    let json: Value = serde_json::from_str(&serde_json::to_string(&report).unwrap()).unwrap();

    assert_eq!(json["finished"], true);
    assert_eq!(json["ok"], 90);
    assert_eq!(json["failed"], 10);
    assert_eq!(json["failures_by_kind"]["rejected_4xx"], 10, "{json:#}");
    // Durations are seconds, as floats.
    let elapsed = json["elapsed"].as_f64().expect("elapsed in seconds");
    assert!(
        (elapsed - report.elapsed.as_secs_f64()).abs() < 1e-9,
        "{json:#}"
    );
    assert!(
        json["latency"]["p50"].as_f64().unwrap() >= 0.005,
        "{json:#}"
    );
    assert_eq!(json["latency"]["count"], 90);

    let stages = json["stages"].as_array().expect("stages");
    assert_eq!(stages.len(), 2);
    assert_eq!(stages[0]["name"], "fetch");
    assert_eq!(stages[0]["kind"], "io");
    assert_eq!(stages[1]["kind"], "cpu");
    assert_eq!(stages[0]["items_out"], 90);
    assert_eq!(stages[0]["errors_by_kind"]["rejected_4xx"], 10);
    assert!(stages[0]["blocked_get"].is_f64(), "{json:#}");
    assert!(stages[0]["agents"].is_array());

    let api = &json["apis"][0];
    assert_eq!(api["name"], "search");
    assert_eq!(api["attempts"], 100);
    assert_eq!(api["calls_ok"], 90);
    assert_eq!(api["pause_left"], Value::Null);
    assert_eq!(api["tuner"], "up");

    let decisions = json["decisions"].as_array().expect("decisions");
    assert_eq!(decisions.len(), report.decisions.len());
    assert!(
        !decisions.is_empty(),
        "the run lasts a few windows: {report}"
    );
    assert_eq!(decisions[0]["reason"], "test: always up");
    assert!(decisions[0]["at"].as_f64().unwrap() > 0.0);
}
