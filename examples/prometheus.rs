//! gearshift's figures in Prometheus text format: a pipeline (ids -> fetch
//! over HTTP from an API on 127.0.0.1 -> CPU work) publishes them through
//! the `metrics` facade (gearshift's feature `metrics`), and
//! `metrics-exporter-prometheus` serves them on 127.0.0.1.
//!
//! `cargo run --release --example prometheus` serves
//! `http://127.0.0.1:9000/metrics` (`--listen 127.0.0.1:PORT` to change it)
//! while the pipeline runs, until Ctrl-C.
//!
//! `cargo run --release --example prometheus -- --once` runs a short
//! pipeline, scrapes its own endpoint over HTTP, prints the scrape and exits.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use gearshift::http::HttpFetcher;
use gearshift::{Api, Pipeline, PipelineHandle};
use metrics_exporter_prometheus::PrometheusBuilder;

const DEFAULT_LISTEN: &str = "127.0.0.1:9000";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    support::init_tracing();
    let args = Args::parse(std::env::args().skip(1))?;
    // Install the recorder before the pipeline starts, so that it gets the
    // metrics' descriptions (the `# HELP` lines) too.
    let listen = match args.listen {
        Some(addr) => start_exporter(addr)?,
        None => start_exporter_on_free_port()?,
    };
    let url = format!("http://{listen}/metrics");
    let api = support::Api::start(Duration::from_millis(10)).await?;
    let fetcher = HttpFetcher::builder().build()?;
    let items = Api::new("items").timeout(Duration::from_secs(2));
    let count = if args.once { 500 } else { u64::MAX };
    let handle = Pipeline::from_iter(0..count)
        .io(move |id| {
            let (fetcher, url) = (fetcher.clone(), api.item_url(id));
            async move { fetcher.get(&url).await }
        })
        .named("fetch")
        .api(&items)
        .cpu(|body| support::digest(&body, 100)[0])
        .named("score")
        .spawn()?;

    if args.once {
        let report = handle.join().await;
        let scrape = scrape(&url).await?;
        println!("{scrape}");
        anyhow::ensure!(report.ok == count, "every item should succeed: {report}");
        anyhow::ensure!(
            scrape.contains(&format!("gearshift_items_ok_total {count}")),
            "the scrape should count every item"
        );
        return Ok(());
    }
    serve_until_ctrl_c(handle, &url).await
}

async fn serve_until_ctrl_c(handle: PipelineHandle, url: &str) -> anyhow::Result<()> {
    println!("serving {url} while the pipeline runs; Ctrl-C to stop");
    tokio::signal::ctrl_c().await?;
    handle.cancel();
    println!("{}", handle.join().await);
    Ok(())
}

async fn scrape(url: &str) -> anyhow::Result<String> {
    let body = tokio::time::timeout(Duration::from_secs(10), async {
        reqwest::get(url).await?.error_for_status()?.text().await
    })
    .await
    .context("the scrape took over 10 s")??;
    Ok(body)
}

/// Starts the exporter's HTTP listener on `addr`.
fn start_exporter(addr: SocketAddr) -> anyhow::Result<SocketAddr> {
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()
        .with_context(|| format!("could not serve metrics on {addr}"))?;
    Ok(addr)
}

/// Starts the exporter on a free port of 127.0.0.1 (the exporter binds the
/// address it is given, so a port found free may be taken before: retry).
fn start_exporter_on_free_port() -> anyhow::Result<SocketAddr> {
    let mut last = None;
    for _ in 0..10 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        match start_exporter(SocketAddr::from(([127, 0, 0, 1], port))) {
            Ok(addr) => return Ok(addr),
            Err(e) => last = Some(e),
        }
    }
    Err(last.expect("tried at least once"))
}

/// `--once`, `--listen ADDR`.
struct Args {
    once: bool,
    /// `None`: a free port (with `--once`).
    listen: Option<SocketAddr>,
}

impl Args {
    fn parse(mut args: impl Iterator<Item = String>) -> anyhow::Result<Args> {
        let (mut once, mut listen) = (false, None);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--once" => once = true,
                "--listen" => {
                    let addr: SocketAddr = args
                        .next()
                        .context("--listen needs an address, e.g. 127.0.0.1:9000")?
                        .parse()
                        .context("--listen takes IP:PORT, e.g. 127.0.0.1:9000")?;
                    anyhow::ensure!(
                        addr.ip().is_loopback(),
                        "--listen: this example serves on loopback only, got {}",
                        addr.ip()
                    );
                    listen = Some(addr);
                }
                other => {
                    anyhow::bail!("unknown argument {other:?}; expected --once, --listen ADDR")
                }
            }
        }
        if listen.is_none() && !once {
            listen = Some(DEFAULT_LISTEN.parse()?);
        }
        Ok(Args { once, listen })
    }
}
