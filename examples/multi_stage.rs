//! Three stages: fetch (IO) -> process (CPU) -> upload (IO), against two
//! different APIs, each with its own budget (calls in flight, retries), with
//! failures routed to a dead-letter sink and outputs read as a stream.
//!
//! `cargo run --release --example multi_stage`

mod support;

use std::time::Duration;

use futures::StreamExt;
use gearshift::{Agents, Api, Outcome, Pipeline, Preset, RetryPolicy, StageError};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    support::init_tracing();
    // Two remote APIs: a slow one to fetch from, a fast one to upload to.
    let source = support::Api::start(Duration::from_millis(10)).await?;
    let store = support::Api::start(Duration::from_millis(2)).await?;
    let client = reqwest::Client::new();
    let (fetch_client, upload_client) = (client.clone(), client);
    let (fetch_api, upload_url) = (source.clone(), store.upload_url());
    // One budget per API: their limits and retries are their own.
    let search = Api::new("source").max_in_flight(32);
    let uploads = Api::new("store")
        .max_in_flight(4)
        .retry(RetryPolicy::attempts(5));

    let (handle, mut outcomes) = Pipeline::from_iter(0..1_000u64)
        .io(move |id| {
            let (client, url) = (fetch_client.clone(), fetch_api.item_url(id));
            async move { Ok::<_, StageError>(client.get(url).send().await?.bytes().await?) }
        })
        .named("fetch")
        .api(&search)
        .agents(Agents::Total(32))
        .cpu(|body| support::digest(&body, 100).to_vec())
        .named("process")
        .io(move |digest: Vec<u8>| {
            let (client, url) = (upload_client.clone(), upload_url.clone());
            async move {
                let stored = client.post(url).body(digest).send().await?.text().await?;
                Ok::<_, StageError>(stored.parse::<usize>().unwrap_or(0))
            }
        })
        .named("upload")
        .api(&uploads)
        .agents(Agents::Total(4))
        .preset(Preset::Mixed)
        .dead_letter(|failure| tracing::warn!(%failure, "dead letter"))
        .spawn_stream()?;

    let mut uploaded = 0;
    while let Some(outcome) = outcomes.next().await {
        if let Outcome::Ok { value: 32, .. } = outcome {
            uploaded += 1;
        }
    }
    let report = handle.join().await;
    println!("{report}");
    println!("uploaded {uploaded} digests of 32 bytes");
    anyhow::ensure!(uploaded == 1_000, "every item should be uploaded");
    Ok(())
}
