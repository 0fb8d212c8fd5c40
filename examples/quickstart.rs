//! ids -> fetch from an HTTP API on 127.0.0.1 (started here) -> CPU work ->
//! report.
//!
//! `cargo run --release --example quickstart`

mod support;

use std::time::Duration;

use gearshift::{Pipeline, Preset, StageError};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    support::init_tracing();
    let api = support::Api::start(Duration::from_millis(20)).await?;
    // One pooled client shared by every agent.
    let client = reqwest::Client::new();

    let report = Pipeline::from_iter(0..2_000u64)
        .io(move |id| {
            let (client, url) = (client.clone(), api.item_url(id));
            async move {
                let body = client
                    .get(url)
                    .send()
                    .await?
                    .error_for_status()?
                    .bytes()
                    .await?;
                Ok::<_, StageError>(body)
            }
        })
        .named("fetch")
        .cpu(|body| support::digest(&body, 200)[0])
        .named("score")
        .preset(Preset::ApiHeavy)
        .run()
        .await?;

    println!("{report}");
    anyhow::ensure!(report.ok == 2_000, "every item should succeed");
    Ok(())
}
