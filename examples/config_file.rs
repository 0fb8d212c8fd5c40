//! Settings from a TOML file and `GEARSHIFT_*` environment variables: ids
//! -> fetch from an HTTP API on 127.0.0.1 (started here) -> CPU work ->
//! report, with the pipeline, its API budget and its two stages set by
//! `examples/gearshift.toml` (a commented sample of every key).
//!
//! ```sh
//! cargo run --example config_file                       # the sample file
//! cargo run --example config_file -- my.toml            # your own
//! GEARSHIFT_STAGES__FETCH__AGENTS=8 cargo run --example config_file
//! cargo run --example config_file -- --print            # the settings in effect, as TOML
//! ```

mod support;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use gearshift::Pipeline;
use gearshift::config_file::ConfigFile;
use gearshift::http::HttpFetcher;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    support::init_tracing();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let print = args.iter().any(|a| a == "--print");
    let path = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/gearshift.toml")));

    // The error names the file (or the variable) and the key, e.g.
    // "gearshift.toml: apis.items.rate_limt: unknown field `rate_limt`, ...".
    let file = ConfigFile::load(&path).context("loading the settings")?;
    if print {
        print!("{}", file.to_toml());
        return Ok(());
    }

    let api = support::Api::start(Duration::from_millis(5)).await?;
    let fetcher = HttpFetcher::builder().build()?;
    let items = file.api("items"); // one budget, with [apis.items]
    let report = Pipeline::from_iter(0..1_000u64)
        .config(file.config()) // the top level, its preset applied
        .io(move |id| {
            let (fetcher, url) = (fetcher.clone(), api.item_url(id));
            async move { fetcher.get(&url).await }
        })
        .named("fetch")
        .api(&items)
        .stage_settings(file.stage("fetch")) // [stages.fetch]
        .cpu(|body| support::digest(&body, 50)[0])
        .named("score")
        .stage_settings(file.stage("score")) // [stages.score]
        .run()
        .await?;

    // A table the code never asked for is a name that matches nothing.
    for key in file.unused() {
        tracing::warn!(%key, file = %path.display(), "no stage or API of this pipeline has this name");
    }
    println!("{report}");
    anyhow::ensure!(report.ok == 1_000, "every item should succeed");
    Ok(())
}
