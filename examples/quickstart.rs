//! ids -> fetch from an HTTP API on 127.0.0.1 (started here) -> CPU work ->
//! report.
//!
//! `cargo run --release --example quickstart`

mod support;

use std::time::Duration;

use gearshift::http::HttpFetcher;
use gearshift::{Agents, Api, Pipeline, Preset};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    support::init_tracing();
    let api = support::Api::start(Duration::from_millis(20)).await?;
    // One pooled client shared by every agent, with timeouts, a body cap and
    // error classification (5xx, 429 + Retry-After, resets, truncation).
    let fetcher = HttpFetcher::builder().build()?;
    // The API's budget: at most 32 calls in flight, whatever the stages do.
    let items = Api::new("items").max_in_flight(32);

    let report = Pipeline::from_iter(0..2_000u64)
        .io(move |id| {
            let (fetcher, url) = (fetcher.clone(), api.item_url(id));
            async move { fetcher.get(&url).await }
        })
        .named("fetch")
        .api(&items)
        .agents(Agents::Total(32))
        .cpu(|body| support::digest(&body, 200)[0])
        .named("score")
        .preset(Preset::ApiHeavy)
        .run()
        .await?;

    println!("{report}");
    anyhow::ensure!(report.ok == 2_000, "every item should succeed");
    Ok(())
}
