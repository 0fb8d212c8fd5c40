//! Stats as `tracing` events. Alone in its binary: tracing caches each
//! call site's interest process-wide, so a test running beside it without a
//! subscriber would silence the events this one captures.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gearshift::{Config, Pipeline, StageError};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn stats_are_logged_per_stage_at_the_configured_interval() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        Pipeline::from_iter(0..40u64)
            .io(|x| async move {
                tokio::time::sleep(Duration::from_millis(10)).await;
                Ok::<_, StageError>(x)
            })
            .named("fetch")
            .cpu(|x| x)
            .config(Config {
                stats_interval: Some(Duration::from_millis(30)),
                ..Config::default().with_cores(1)
            })
            .run()
            .await
            .unwrap()
    });
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let stage_lines = text
        .lines()
        .filter(|l| l.contains("stage stats") && l.contains("stage=fetch"))
        .count();
    assert!(
        stage_lines >= 2,
        "expected periodic stats for stage fetch, got:\n{text}"
    );
    assert!(text.contains("pipeline finished"), "{text}");
}
