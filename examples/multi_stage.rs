//! Three stages: fetch (IO) -> process (CPU) -> upload (IO), with failures
//! routed to a dead-letter sink and outputs read as a stream.
//!
//! `cargo run --release --example multi_stage`

mod support;

use std::time::Duration;

use futures::StreamExt;
use gearshift::{Outcome, Pipeline, Preset, StageError};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    support::init_tracing();
    let api = support::Api::start(Duration::from_millis(10)).await?;
    let client = reqwest::Client::new();
    let (fetch_client, upload_client) = (client.clone(), client);
    let (fetch_api, upload_url) = (api.clone(), api.upload_url());

    let (handle, mut outcomes) = Pipeline::from_iter(0..1_000u64)
        .io(move |id| {
            let (client, url) = (fetch_client.clone(), fetch_api.item_url(id));
            async move { Ok::<_, StageError>(client.get(url).send().await?.bytes().await?) }
        })
        .named("fetch")
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
