//! A run that starts in Morning (API-heavy) and shifts to Evening
//! (CPU-heavy) halfway, then gives the fetch stage more agents by hand and
//! caps its API's calls in flight: throughput after each change.
//!
//! `cargo run --release --example presets`

mod support;

use std::time::{Duration, Instant};

use gearshift::{Pipeline, Preset, StageError};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    support::init_tracing();
    let api = support::Api::start(Duration::from_millis(50)).await?;
    let client = reqwest::Client::new();
    let url_api = api.clone();
    let handle = Pipeline::from_iter(0..u64::MAX)
        .io(move |id| {
            let (client, url) = (client.clone(), url_api.item_url(id));
            async move { Ok::<_, StageError>(client.get(url).send().await?.bytes().await?) }
        })
        .named("fetch")
        .cpu(|body| support::digest(&body, 50)[0])
        .named("score")
        .preset(Preset::Morning)
        .spawn()?;

    let phase = Duration::from_secs(3);
    let morning = measure(&handle, phase).await;
    println!(
        "morning: {morning:.0} items/s with {:?}",
        handle.config().agents
    );

    // Evening: the API answers fast now, and each item costs more CPU.
    api.set_latency(Duration::from_millis(2));
    handle.apply(Preset::Evening)?;
    let evening = measure(&handle, phase).await;
    println!(
        "evening: {evening:.0} items/s with {:?}",
        handle.config().agents
    );

    // One stage and one API budget, by name, live: the stage's own setting
    // wins over the preset's default.
    handle.stage("fetch")?.set_agents(16)?;
    handle.api("fetch")?.set_max_in_flight(Some(12))?;
    let tuned = measure(&handle, phase).await;
    println!("fetch with 16 agents, at most 12 calls in flight: {tuned:.0} items/s");

    handle.cancel();
    let report = handle.join().await;
    println!("{report}");
    Ok(())
}

/// Items finished per second over `d`.
async fn measure(handle: &gearshift::PipelineHandle, d: Duration) -> f64 {
    let before = handle.snapshot().outcomes();
    let start = Instant::now();
    tokio::time::sleep(d).await;
    (handle.snapshot().outcomes() - before) as f64 / start.elapsed().as_secs_f64()
}
